package dev.isthmus.controller.federation;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.isthmus.api.names.FederationName;
import dev.isthmus.api.nats.Heartbeat;
import dev.isthmus.api.nats.Subjects;
import dev.isthmus.controller.config.ControllerConfig;
import dev.isthmus.controller.nats.NatsConnection;
import io.micrometer.core.instrument.MeterRegistry;
import io.quarkus.scheduler.Scheduled;
import jakarta.enterprise.context.ApplicationScoped;
import java.util.UUID;
import java.util.concurrent.atomic.AtomicLong;

/** Announces this cluster to the federation every heartbeat interval and sweeps silent peers. */
@ApplicationScoped
public class HeartbeatPublisher {

    private final ControllerConfig config;
    private final NatsConnection nats;
    private final PeerTracker peers;
    private final ObjectMapper json;
    private final MeterRegistry meters;
    private final String incarnation = UUID.randomUUID().toString();
    private final AtomicLong sequence = new AtomicLong();
    private final String subject;

    public HeartbeatPublisher(ControllerConfig config, NatsConnection nats, PeerTracker peers, ObjectMapper json, MeterRegistry meters) {
        this.config = config;
        this.nats = nats;
        this.peers = peers;
        this.json = json;
        this.meters = meters;
        this.subject = new Subjects(FederationName.of(config.federation()))
                .heartbeat(dev.isthmus.api.names.ClusterName.of(config.cluster().name()));
    }

    @Scheduled(every = "${isthmus.heartbeat-interval:1s}", concurrentExecution = Scheduled.ConcurrentExecution.SKIP)
    void beat() throws JsonProcessingException {
        var hb = new Heartbeat(config.cluster().name(), config.cluster().region().orElse(config.cluster().name()),
                config.cluster().zone(), incarnation, sequence.incrementAndGet(), System.currentTimeMillis());
        if (nats.publish(subject, json.writeValueAsString(hb))) {
            meters.counter("isthmus_federation_messages_published", "subject", "heartbeat").increment();
        }
        peers.sweep();
    }
}
