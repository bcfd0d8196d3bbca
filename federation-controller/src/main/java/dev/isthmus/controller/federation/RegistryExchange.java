package dev.isthmus.controller.federation;

import com.fasterxml.jackson.databind.ObjectMapper;
import dev.isthmus.api.names.ClusterName;
import dev.isthmus.api.names.FederationName;
import dev.isthmus.api.nats.Subjects;
import dev.isthmus.api.registry.RegistrySnapshot;
import dev.isthmus.controller.config.ControllerConfig;
import dev.isthmus.controller.nats.NatsConnection;
import dev.isthmus.controller.registry.WorkloadRegistry;
import io.micrometer.core.instrument.MeterRegistry;
import io.quarkus.runtime.StartupEvent;
import io.quarkus.scheduler.Scheduled;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.enterprise.event.Observes;
import org.jboss.logging.Logger;

/**
 * Both sides of the registry exchange over NATS: publishes this cluster's snapshot when it changes,
 * periodically, and when a controller asks for a sync; receives every cluster's snapshots into the
 * {@link FederatedCatalog}. Malformed, inconsistent and stale snapshots are dropped and counted.
 */
@ApplicationScoped
public class RegistryExchange {

    private static final Logger LOG = Logger.getLogger(RegistryExchange.class);

    private final ControllerConfig config;
    private final NatsConnection nats;
    private final WorkloadRegistry registry;
    private final FederatedCatalog catalog;
    private final ObjectMapper json;
    private final MeterRegistry meters;
    private final Subjects subjects;
    private final PeerSnapshotStore store;

    public RegistryExchange(ControllerConfig config, NatsConnection nats, WorkloadRegistry registry, FederatedCatalog catalog,
            ObjectMapper json, MeterRegistry meters) {
        this.config = config;
        this.nats = nats;
        this.registry = registry;
        this.catalog = catalog;
        this.json = json;
        this.meters = meters;
        this.subjects = new Subjects(FederationName.of(config.federation()));
        this.store = new PeerSnapshotStore(config.stateDir(), json);
    }

    void start(@Observes StartupEvent event) {
        catalog.accept(registry.snapshot());
        for (RegistrySnapshot known : store.loadAll()) {
            if (!known.cluster().equals(config.cluster().name()) && catalog.accept(known) == FederatedCatalog.Outcome.APPLIED) {
                LOG.infof("event=peer_snapshot_restored cluster=%s generation=%d endpoints=%d", known.cluster(),
                        known.generation(), known.endpoints().size());
            }
        }
        nats.subscribe(subjects.registryAll(), msg -> {
            RegistrySnapshot snapshot;
            try {
                snapshot = json.readValue(msg.getData(), RegistrySnapshot.class);
                ClusterName.of(snapshot.cluster());
                if (!msg.getSubject().equals(subjects.registry(ClusterName.of(snapshot.cluster())))) {
                    throw new IllegalArgumentException("snapshot of " + snapshot.cluster() + " arrived on " + msg.getSubject());
                }
            } catch (Exception e) {
                reject("malformed", msg.getSubject(), e.getMessage());
                return;
            }
            if (snapshot.cluster().equals(config.cluster().name())) {
                return;
            }
            meters.counter("isthmus_federation_messages_received", "subject", "registry").increment();
            switch (catalog.accept(snapshot)) {
                case APPLIED -> {
                    store.save(snapshot);
                    LOG.debugf("event=registry_applied cluster=%s generation=%d endpoints=%d", snapshot.cluster(),
                            snapshot.generation(), snapshot.endpoints().size());
                }
                case STALE -> meters.counter("isthmus_federation_messages_stale", "subject", "registry").increment();
                case INCONSISTENT -> reject("hash_mismatch", msg.getSubject(), "content hash does not match endpoints");
            }
        });
        nats.subscribe(subjects.registrySync(), msg -> publish(registry.snapshot()));
        nats.onConnected(() -> nats.publish(subjects.registrySync(), config.cluster().name()));
    }

    private void reject(String reason, String subject, String detail) {
        meters.counter("isthmus_federation_messages_rejected", "subject", "registry", "reason", reason).increment();
        LOG.warnf("event=registry_rejected reason=%s subject=%s detail=%s", reason, subject, detail);
    }

    void onChange(@Observes WorkloadRegistry.RegistryChanged change) {
        catalog.accept(change.snapshot());
        publish(change.snapshot());
    }

    @Scheduled(every = "${isthmus.registry.republish-interval:5s}", concurrentExecution = Scheduled.ConcurrentExecution.SKIP)
    void republish() {
        publish(registry.snapshot());
    }

    /** Expires silent registrations promptly (the TTL check runs every second). */
    @Scheduled(every = "1s", concurrentExecution = Scheduled.ConcurrentExecution.SKIP)
    void expire() {
        registry.expire();
    }

    private void publish(RegistrySnapshot snapshot) {
        try {
            if (nats.publish(subjects.registry(ClusterName.of(snapshot.cluster())), json.writeValueAsString(snapshot))) {
                meters.counter("isthmus_federation_messages_published", "subject", "registry").increment();
            }
        } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
            throw new IllegalStateException("registry snapshot not serializable", e);
        }
    }
}
