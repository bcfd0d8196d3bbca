package dev.isthmus.controller.federation;

import com.fasterxml.jackson.databind.ObjectMapper;
import dev.isthmus.api.names.PeerState;
import dev.isthmus.api.nats.Heartbeat;
import dev.isthmus.api.nats.Subjects;
import dev.isthmus.controller.config.ControllerConfig;
import dev.isthmus.controller.nats.NatsConnection;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.Tags;
import io.quarkus.runtime.StartupEvent;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.enterprise.event.Observes;
import java.time.Clock;
import java.time.Instant;
import java.util.Comparator;
import java.util.List;
import java.util.concurrent.ConcurrentHashMap;
import org.jboss.logging.Logger;

/**
 * Tracks the other clusters of the federation from their heartbeats: a peer whose heartbeats stop
 * for {@code missed-heartbeats} intervals becomes {@code Unreachable}, and {@code Active} again when
 * they resume. Malformed heartbeats are dropped and counted.
 */
@ApplicationScoped
public class PeerTracker {

    private static final Logger LOG = Logger.getLogger(PeerTracker.class);

    /** What this controller knows of one peer. */
    public record Peer(String cluster, String region, String zone, PeerState state, Instant lastHeartbeat, long sequence) {
    }

    private final ControllerConfig config;
    private final NatsConnection nats;
    private final ObjectMapper json;
    private final MeterRegistry meters;
    private final Clock clock = Clock.systemUTC();
    private final ConcurrentHashMap<String, Peer> peers = new ConcurrentHashMap<>();

    public PeerTracker(ControllerConfig config, NatsConnection nats, ObjectMapper json, MeterRegistry meters) {
        this.config = config;
        this.nats = nats;
        this.json = json;
        this.meters = meters;
    }

    void start(@Observes StartupEvent event) {
        var subjects = new Subjects(dev.isthmus.api.names.FederationName.of(config.federation()));
        for (PeerState s : PeerState.values()) {
            meters.gauge("isthmus_federation_peers", Tags.of("state", s.display()), peers,
                    m -> m.values().stream().filter(p -> p.state() == s).count());
        }
        nats.subscribe(subjects.heartbeatsAll(), msg -> {
            Heartbeat hb;
            try {
                hb = json.readValue(msg.getData(), Heartbeat.class);
                dev.isthmus.api.names.ClusterName.of(hb.cluster());
            } catch (Exception e) {
                meters.counter("isthmus_federation_messages_rejected", "subject", "heartbeat", "reason", "malformed").increment();
                LOG.debugf("event=heartbeat_rejected subject=%s cause=%s", msg.getSubject(), e.getMessage());
                return;
            }
            if (hb.cluster().equals(config.cluster().name())) {
                return;
            }
            meters.counter("isthmus_federation_messages_received", "subject", "heartbeat").increment();
            record(hb);
        });
    }

    void record(Heartbeat hb) {
        Instant now = clock.instant();
        peers.compute(hb.cluster(), (k, old) -> {
            if (old == null || old.state() != PeerState.ACTIVE) {
                LOG.infof("event=peer_state cluster=%s state=Active previous=%s", hb.cluster(),
                        old == null ? "unknown" : old.state().display());
            }
            return new Peer(hb.cluster(), hb.region(), hb.zone(), PeerState.ACTIVE, now, hb.sequence());
        });
    }

    /** Marks peers whose heartbeats stopped; called on every heartbeat tick. */
    void sweep() {
        Instant deadline = clock.instant().minus(config.heartbeatInterval().multipliedBy(config.missedHeartbeats()));
        peers.replaceAll((k, p) -> {
            if (p.state() == PeerState.ACTIVE && p.lastHeartbeat().isBefore(deadline)) {
                LOG.warnf("event=peer_state cluster=%s state=Unreachable previous=Active last_heartbeat=%s", p.cluster(), p.lastHeartbeat());
                return new Peer(p.cluster(), p.region(), p.zone(), PeerState.UNREACHABLE, p.lastHeartbeat(), p.sequence());
            }
            return p;
        });
    }

    public List<Peer> peers() {
        return peers.values().stream().sorted(Comparator.comparing(Peer::cluster)).toList();
    }
}
