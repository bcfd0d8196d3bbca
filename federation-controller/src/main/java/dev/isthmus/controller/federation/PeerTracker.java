package dev.isthmus.controller.federation;

import com.fasterxml.jackson.databind.ObjectMapper;
import dev.isthmus.api.names.PeerState;
import dev.isthmus.api.nats.Heartbeat;
import dev.isthmus.controller.config.ControllerConfig;
import dev.isthmus.controller.membership.FederationBus;
import dev.isthmus.controller.membership.Membership;
import dev.isthmus.controller.membership.Roster;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.MultiGauge;
import io.micrometer.core.instrument.Tags;
import io.quarkus.runtime.StartupEvent;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.enterprise.event.Observes;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.time.Clock;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import org.jboss.logging.Logger;

/**
 * The state of every other member of the federation, from the roster and their heartbeats: a member
 * whose heartbeats stop for {@code missed-heartbeats} intervals is {@code Unreachable}, {@code Active}
 * again when they resume; one admitted since this controller started and not heard from yet is
 * {@code Joining}; one that left or was evicted is {@code Left}. Heartbeats reach this class only
 * once the bus has verified them.
 */
@ApplicationScoped
public class PeerTracker {

    private static final Logger LOG = Logger.getLogger(PeerTracker.class);

    /**
     * What this controller knows of one peer.
     *
     * @param lastHeartbeat null if none was received since this controller started
     * @param registryGeneration the generation the peer last announced, -1 if unknown
     * @param generationLag how many generations the catalog here is behind that announcement
     * @param gateway {@code host:port} of the peer's east-west gateway from its last heartbeat, empty if unknown or none
     * @param policy the commit SHA of the policy the peer runs, from its last heartbeat, empty if unknown or none
     * @param drainingUntil while the peer is {@code Draining}, when its drain ends (by its clock); else null
     */
    public record Peer(String cluster, String region, String zone, @com.fasterxml.jackson.annotation.JsonIgnore PeerState state,
            Instant lastHeartbeat, long registryGeneration, long generationLag, Instant joinedAt, String leftReason, String gateway, String policy,
            Instant drainingUntil) {

        /** The state as the API and CLI spell it: Joining, Active, Draining, Unreachable, Left. */
        @com.fasterxml.jackson.annotation.JsonProperty("state")
        public String stateName() {
            return state.display();
        }
    }

    private record Heard(Instant at, Heartbeat heartbeat) {
    }

    private final ControllerConfig config;
    private final Membership membership;
    private final FederationBus bus;
    private final FederatedCatalog catalog;
    private final ObjectMapper json;
    private final MeterRegistry meters;
    private final Clock clock = Clock.systemUTC();
    private final Instant startedAt = Instant.now();
    private final Map<String, Heard> heard = new ConcurrentHashMap<>();
    private final Map<String, PeerState> logged = new ConcurrentHashMap<>();
    private MultiGauge lagGauge;
    @jakarta.inject.Inject
    RegistryExchange exchange;

    public PeerTracker(ControllerConfig config, Membership membership, FederationBus bus, FederatedCatalog catalog, ObjectMapper json,
            MeterRegistry meters) {
        this.config = config;
        this.membership = membership;
        this.bus = bus;
        this.catalog = catalog;
        this.json = json;
        this.meters = meters;
    }

    void start(@Observes StartupEvent event) {
        for (PeerState s : PeerState.values()) {
            meters.gauge("isthmus_federation_peers", Tags.of("state", s.display()), this,
                    t -> t.peers().stream().filter(p -> p.state() == s).count());
        }
        lagGauge = MultiGauge.builder("isthmus_federation_registry_generation_lag")
                .description("Registry generations a peer announced that this controller does not hold yet").register(meters);
        bus.on("heartbeat", msg -> {
            Heartbeat hb;
            try {
                hb = json.readValue(msg.data(), Heartbeat.class);
            } catch (IOException e) {
                throw new UncheckedIOException("heartbeat is not valid JSON", e);
            }
            if (!msg.sender().equals(hb.cluster())) {
                throw new IllegalArgumentException("heartbeat of " + hb.cluster() + " signed by " + msg.sender());
            }
            heard.put(hb.cluster(), new Heard(clock.instant(), hb));
            exchange.announced(hb.cluster(), hb.registryGeneration(), hb.registryHash());
        });
    }

    void onMembership(@Observes Membership.MembershipChanged change) {
        if (change.selfLeft()) {
            heard.clear();
            return;
        }
        for (Roster.Member m : change.changed()) {
            if (!m.active()) {
                heard.remove(m.cluster());
            }
        }
    }

    /** Every other member of the federation with its state, by name. */
    public List<Peer> peers() {
        Instant now = clock.instant();
        Instant deadline = now.minus(config.heartbeatInterval().multipliedBy(config.missedHeartbeats()));
        var out = new ArrayList<Peer>();
        for (Roster.Member m : membership.peers()) {
            Heard h = heard.get(m.cluster());
            PeerState state;
            if (!m.active()) {
                state = PeerState.LEFT;
            } else if (h == null) {
                state = Instant.ofEpochMilli(m.joinedAt()).isAfter(startedAt) ? PeerState.JOINING : PeerState.UNREACHABLE;
            } else {
                state = h.at().isBefore(deadline) ? PeerState.UNREACHABLE
                        : h.heartbeat().drainingUntilMillis() > now.toEpochMilli() ? PeerState.DRAINING : PeerState.ACTIVE;
            }
            long announced = h == null ? -1 : h.heartbeat().registryGeneration();
            long lag = announced < 0 ? 0 : Math.max(0, announced - catalog.generation(m.cluster()));
            out.add(new Peer(m.cluster(), m.region(), m.zone(), state, h == null ? null : h.at(), announced, lag,
                    Instant.ofEpochMilli(m.joinedAt()), m.leftReason(), h == null ? "" : h.heartbeat().gateway(),
                    h == null ? "" : h.heartbeat().policy(),
                    state == PeerState.DRAINING ? Instant.ofEpochMilli(h.heartbeat().drainingUntilMillis()) : null));
        }
        return out;
    }

    /** Logs state changes and refreshes the lag gauge; called on every heartbeat tick. */
    void sweep() {
        var rows = new ArrayList<MultiGauge.Row<?>>();
        for (Peer p : peers()) {
            PeerState before = logged.put(p.cluster(), p.state());
            if (before != p.state()) {
                String line = String.format("event=peer_state cluster=%s state=%s previous=%s last_heartbeat=%s", p.cluster(),
                        p.state().display(), before == null ? "unknown" : before.display(), p.lastHeartbeat());
                if (p.state() == PeerState.UNREACHABLE) {
                    LOG.warn(line);
                } else {
                    LOG.info(line);
                }
            }
            if (p.state() != PeerState.LEFT) {
                rows.add(MultiGauge.Row.of(Tags.of("peer", p.cluster()), p.generationLag()));
            }
        }
        if (lagGauge != null) {
            lagGauge.register(rows, true);
        }
    }
}
