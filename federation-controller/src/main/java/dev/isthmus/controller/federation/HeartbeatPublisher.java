package dev.isthmus.controller.federation;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.isthmus.api.nats.Heartbeat;
import dev.isthmus.controller.config.ControllerConfig;
import dev.isthmus.controller.membership.FederationBus;
import dev.isthmus.controller.registry.LocalRegistry;
import io.quarkus.scheduler.Scheduled;
import jakarta.enterprise.context.ApplicationScoped;
import java.util.UUID;
import java.util.concurrent.atomic.AtomicLong;

/** Announces this cluster to the federation every heartbeat interval (when a member) and sweeps peers. */
@ApplicationScoped
public class HeartbeatPublisher {

    private final ControllerConfig config;
    private final FederationBus bus;
    private final PeerTracker peers;
    private final LocalRegistry registry;
    private final ObjectMapper json;
    @jakarta.inject.Inject
    dev.isthmus.controller.policy.PolicyStore policy;
    @jakarta.inject.Inject
    Drain drain;
    private final String incarnation = UUID.randomUUID().toString();
    private final AtomicLong sequence = new AtomicLong();

    public HeartbeatPublisher(ControllerConfig config, FederationBus bus, PeerTracker peers, LocalRegistry registry, ObjectMapper json) {
        this.config = config;
        this.bus = bus;
        this.peers = peers;
        this.registry = registry;
        this.json = json;
    }

    @Scheduled(every = "${isthmus.heartbeat-interval:1s}", concurrentExecution = Scheduled.ConcurrentExecution.SKIP)
    void beat() throws JsonProcessingException {
        var snapshot = registry.snapshot();
        var hb = new Heartbeat(config.cluster().name(), config.cluster().region().orElse(config.cluster().name()),
                config.cluster().zone(), incarnation, sequence.incrementAndGet(), System.currentTimeMillis(),
                snapshot.generation(), snapshot.hash(), config.gateway().address().orElse(""), policy.sha(),
                drain.until().map(java.time.Instant::toEpochMilli).orElse(0L));
        bus.publish(bus.own("heartbeat"), json.writeValueAsBytes(hb));
        peers.sweep();
    }
}
