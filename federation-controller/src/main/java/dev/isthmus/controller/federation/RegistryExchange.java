package dev.isthmus.controller.federation;

import com.fasterxml.jackson.databind.ObjectMapper;
import dev.isthmus.api.registry.RegistrySnapshot;
import dev.isthmus.controller.config.ControllerConfig;
import dev.isthmus.controller.membership.FederationBus;
import dev.isthmus.controller.membership.Membership;
import dev.isthmus.controller.membership.Roster;
import dev.isthmus.controller.nats.NatsConnection;
import dev.isthmus.controller.registry.WorkloadRegistry;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.Timer;
import io.quarkus.runtime.StartupEvent;
import io.quarkus.scheduler.Scheduled;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.enterprise.event.Observes;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import org.jboss.logging.Logger;

/**
 * Both sides of the registry exchange over the federation's bus: publishes this cluster's snapshot
 * when it changes, periodically, and when a member asks for a sync; receives every member's
 * snapshots into the {@link FederatedCatalog}. Only verified messages reach it (see
 * {@link FederationBus}); inconsistent and stale snapshots are dropped and counted.
 *
 * <p>Sync: after joining, after a restart and after every NATS reconnect the controller asks every
 * member for its snapshot; it reports itself {@code Active} once every active member answered (or
 * after {@code isthmus.membership.sync-timeout}), and records how long that took in
 * {@code isthmus_federation_sync_duration_seconds}.
 */
@ApplicationScoped
public class RegistryExchange {

    private static final Logger LOG = Logger.getLogger(RegistryExchange.class);

    private final ControllerConfig config;
    private final NatsConnection nats;
    private final FederationBus bus;
    private final Membership membership;
    private final WorkloadRegistry registry;
    private final FederatedCatalog catalog;
    private final ObjectMapper json;
    private final MeterRegistry meters;
    private final PeerSnapshotStore store;
    private final Set<String> answered = ConcurrentHashMap.newKeySet();
    private volatile long syncStartedNanos = -1;

    public RegistryExchange(ControllerConfig config, NatsConnection nats, FederationBus bus, Membership membership, WorkloadRegistry registry,
            FederatedCatalog catalog, ObjectMapper json, MeterRegistry meters) {
        this.config = config;
        this.nats = nats;
        this.bus = bus;
        this.membership = membership;
        this.registry = registry;
        this.catalog = catalog;
        this.json = json;
        this.meters = meters;
        this.store = new PeerSnapshotStore(config.stateDir(), json);
    }

    void start(@Observes StartupEvent event) {
        catalog.accept(registry.snapshot());
        var roster = membership.roster();
        for (RegistrySnapshot known : store.loadAll()) {
            boolean member = roster.isPresent() && roster.get().isActive(known.cluster());
            if (!member) {
                store.delete(known.cluster());
            } else if (!known.cluster().equals(config.cluster().name()) && catalog.accept(known) == FederatedCatalog.Outcome.APPLIED) {
                LOG.infof("event=peer_snapshot_restored cluster=%s generation=%d endpoints=%d", known.cluster(),
                        known.generation(), known.endpoints().size());
            }
        }
        bus.on("registry", msg -> {
            RegistrySnapshot snapshot;
            try {
                snapshot = json.readValue(msg.data(), RegistrySnapshot.class);
            } catch (IOException e) {
                throw new UncheckedIOException("registry snapshot is not valid JSON", e);
            }
            if (!msg.sender().equals(snapshot.cluster())) {
                bus.reject("registry", "sender_mismatch", "registry", "snapshot of " + snapshot.cluster() + " signed by " + msg.sender());
                return;
            }
            switch (catalog.accept(snapshot)) {
                case APPLIED -> {
                    store.save(snapshot);
                    LOG.debugf("event=registry_applied cluster=%s generation=%d endpoints=%d", snapshot.cluster(),
                            snapshot.generation(), snapshot.endpoints().size());
                }
                case STALE -> meters.counter("isthmus_federation_messages_stale", "subject", "registry").increment();
                case INCONSISTENT -> {
                    bus.reject("registry", "hash_mismatch", "registry", "content hash of " + snapshot.cluster() + " does not match its endpoints");
                    return;
                }
            }
            answered.add(snapshot.cluster());
            checkSynced();
        });
        bus.on("registry-sync", msg -> publish(registry.snapshot()));
        nats.onConnected(this::sync);
    }

    /** Asks every member for its snapshot and publishes this cluster's. */
    private void sync() {
        if (membership.roster().isEmpty()) {
            return;
        }
        answered.clear();
        syncStartedNanos = System.nanoTime();
        if (bus.publish("registry-sync", config.cluster().name().getBytes(StandardCharsets.UTF_8))) {
            publish(registry.snapshot());
        }
        checkSynced();
    }

    private Set<String> missing() {
        var missing = new TreeSet<String>();
        membership.peers().stream().filter(Roster.Member::active).map(Roster.Member::cluster).forEach(missing::add);
        missing.removeAll(answered);
        return missing;
    }

    private void checkSynced() {
        long started = syncStartedNanos;
        if (started < 0 || !missing().isEmpty()) {
            return;
        }
        syncStartedNanos = -1;
        long tookNanos = System.nanoTime() - started;
        Timer.builder("isthmus_federation_sync_duration").description("From a sync request to every member's registry held")
                .publishPercentiles(0.5, 0.99).register(meters).record(tookNanos, TimeUnit.NANOSECONDS);
        LOG.infof("event=registry_synced took_ms=%d members=%d", TimeUnit.NANOSECONDS.toMillis(tookNanos), membership.peers().size() + 1);
        membership.markSynced();
    }

    /** Gives up waiting for members that do not answer (they are unreachable), so the cluster reports Active. */
    @Scheduled(every = "1s", concurrentExecution = Scheduled.ConcurrentExecution.SKIP)
    void syncDeadline() {
        long started = syncStartedNanos;
        if (started >= 0 && System.nanoTime() - started > config.membership().syncTimeout().toNanos()) {
            syncStartedNanos = -1;
            LOG.warnf("event=registry_sync_incomplete missing=%s waited=%s (kept their last known registries)", missing(),
                    config.membership().syncTimeout());
            membership.markSynced();
        } else if (started < 0 && membership.state() == Membership.SelfState.JOINING && nats.isConnected()) {
            sync();
        }
    }

    void onMembership(@Observes Membership.MembershipChanged change) {
        if (change.selfLeft()) {
            answered.clear();
            syncStartedNanos = -1;
            catalog.retainOnly(config.cluster().name());
            store.deleteAll();
            return;
        }
        boolean newcomer = false;
        for (Roster.Member m : change.changed()) {
            if (m.cluster().equals(config.cluster().name())) {
                if (membership.state() == Membership.SelfState.JOINING) {
                    sync();
                }
            } else if (!m.active()) {
                catalog.remove(m.cluster());
                store.delete(m.cluster());
                LOG.infof("event=peer_registry_removed cluster=%s reason=\"%s\"", m.cluster(), m.leftReason());
            } else {
                newcomer = true;
            }
        }
        if (newcomer) {
            publish(registry.snapshot());
        }
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
            bus.publish(bus.own("registry"), json.writeValueAsBytes(snapshot));
        } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
            throw new IllegalStateException("registry snapshot not serializable", e);
        }
    }
}
