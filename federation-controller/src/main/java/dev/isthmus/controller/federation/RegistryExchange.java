package dev.isthmus.controller.federation;

import com.fasterxml.jackson.databind.ObjectMapper;
import dev.isthmus.api.registry.RegistryDelta;
import dev.isthmus.api.registry.RegistrySnapshot;
import dev.isthmus.controller.config.ControllerConfig;
import dev.isthmus.controller.membership.FederationBus;
import dev.isthmus.controller.membership.Membership;
import dev.isthmus.controller.membership.Roster;
import dev.isthmus.controller.nats.NatsConnection;
import dev.isthmus.controller.registry.LocalRegistry;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.Timer;
import io.quarkus.runtime.StartupEvent;
import io.quarkus.scheduler.Scheduled;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.enterprise.event.Observes;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Map;
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
 * <p>Changes go out as deltas ({@code registry-delta.<cluster>}) applied only to the generation
 * they were made from; a receiver that misses one (or sees a member announce a generation it does
 * not hold) asks that member alone for its snapshot. Full snapshots also go out every
 * {@code isthmus.registry.republish-interval}. Received registries are written to disk once a
 * second, off the receive path.
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
    private final LocalRegistry registry;
    private final FederatedCatalog catalog;
    private final ObjectMapper json;
    private final MeterRegistry meters;
    private final PeerSnapshotStore store;
    private final Set<String> answered = ConcurrentHashMap.newKeySet();
    private final Map<String, RegistrySnapshot> pendingSaves = new ConcurrentHashMap<>();
    private final Map<String, Long> lastAsked = new ConcurrentHashMap<>();
    private final Map<String, Long> behindSince = new ConcurrentHashMap<>();
    private final Timer propagation;
    private volatile long syncStartedNanos = -1;

    public RegistryExchange(ControllerConfig config, NatsConnection nats, FederationBus bus, Membership membership, LocalRegistry registry,
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
        this.propagation = Timer.builder("isthmus_federation_propagation")
                .description("From a change in a peer's registry (its clock) to the change applied here")
                .publishPercentiles(0.5, 0.99).register(meters);
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
                    pendingSaves.put(snapshot.cluster(), snapshot);
                    LOG.debugf("event=registry_applied cluster=%s generation=%d endpoints=%d", snapshot.cluster(),
                            snapshot.generation(), snapshot.endpoints().size());
                }
                case STALE -> meters.counter("isthmus_federation_messages_stale", "subject", "registry").increment();
                case INCONSISTENT, GAP -> {
                    bus.reject("registry", "hash_mismatch", "registry", "content hash of " + snapshot.cluster() + " does not match its endpoints");
                    return;
                }
            }
            answered.add(snapshot.cluster());
            checkSynced();
        });
        bus.on("registry-delta", msg -> {
            RegistryDelta delta;
            try {
                delta = json.readValue(msg.data(), RegistryDelta.class);
            } catch (IOException e) {
                throw new UncheckedIOException("registry delta is not valid JSON", e);
            }
            if (!msg.sender().equals(delta.cluster())) {
                bus.reject("registry-delta", "sender_mismatch", "registry-delta", "delta of " + delta.cluster() + " signed by " + msg.sender());
                return;
            }
            switch (catalog.accept(delta)) {
                case APPLIED -> {
                    catalog.snapshot(delta.cluster()).ifPresent(s -> pendingSaves.put(s.cluster(), s));
                    propagation.record(Math.max(0, System.currentTimeMillis() - delta.changedAtMillis()), TimeUnit.MILLISECONDS);
                }
                case STALE -> meters.counter("isthmus_federation_messages_stale", "subject", "registry-delta").increment();
                case GAP -> {
                    meters.counter("isthmus_federation_delta_gaps").increment();
                    requestSnapshot(delta.cluster(), "delta base " + delta.baseGeneration() + " not held");
                }
                case INCONSISTENT -> {
                    bus.reject("registry-delta", "hash_mismatch", "registry-delta", "delta of " + delta.cluster() + " does not give its hash");
                    requestSnapshot(delta.cluster(), "delta result does not match its hash");
                }
            }
        });
        bus.on("registry-sync", msg -> {
            var want = new TreeSet<String>();
            try {
                json.readTree(msg.data()).path("want").forEach(n -> want.add(n.asText()));
            } catch (IOException e) {
                throw new UncheckedIOException("sync request is not valid JSON", e);
            }
            if (want.isEmpty() || want.contains(config.cluster().name())) {
                publish(registry.snapshot());
            }
        });
        nats.onConnected(this::sync);
    }

    /** Asks every member for its snapshot and publishes this cluster's. */
    private void sync() {
        if (membership.roster().isEmpty()) {
            return;
        }
        answered.clear();
        syncStartedNanos = System.nanoTime();
        if (bus.publish("registry-sync", syncRequest(List.of()))) {
            publish(registry.snapshot());
        }
        checkSynced();
    }

    private byte[] syncRequest(List<String> want) {
        var node = json.createObjectNode().put("from", config.cluster().name());
        want.forEach(node.putArray("want")::add);
        return node.toString().getBytes(StandardCharsets.UTF_8);
    }

    /** Asks one member for its full snapshot, at most once a second per member. */
    void requestSnapshot(String cluster, String why) {
        long now = System.currentTimeMillis();
        Long last = lastAsked.get(cluster);
        if (last != null && now - last < 1000) {
            return;
        }
        lastAsked.put(cluster, now);
        LOG.infof("event=registry_snapshot_requested cluster=%s reason=\"%s\"", cluster, why);
        bus.publish("registry-sync", syncRequest(List.of(cluster)));
    }

    /**
     * Called with every verified heartbeat: a member that announces a generation this controller
     * does not hold for more than two seconds (a lost delta) is asked for its snapshot.
     */
    void announced(String cluster, long generation) {
        if (generation <= catalog.generation(cluster)) {
            behindSince.remove(cluster);
            return;
        }
        long now = System.currentTimeMillis();
        Long since = behindSince.putIfAbsent(cluster, now);
        if (since != null && now - since > 2000) {
            behindSince.remove(cluster);
            requestSnapshot(cluster, "announced generation " + generation + ", held " + catalog.generation(cluster));
        }
    }

    /** Writes the registries received in the last second to disk (off the receive path). */
    @Scheduled(every = "1s", concurrentExecution = Scheduled.ConcurrentExecution.SKIP)
    void flushStore() {
        for (String cluster : List.copyOf(pendingSaves.keySet())) {
            RegistrySnapshot s = pendingSaves.remove(cluster);
            if (s != null && membership.roster().map(r -> r.isActive(cluster)).orElse(false)) {
                store.save(s);
            }
        }
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
            pendingSaves.clear();
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
                pendingSaves.remove(m.cluster());
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

    /** Publishes a local change: a delta when it is small against the registry, else the whole snapshot. */
    void onChange(@Observes LocalRegistry.RegistryChanged change) {
        catalog.accept(change.snapshot());
        var delta = RegistryDelta.between(change.previous(), change.snapshot(), change.changedAtMillis());
        if (delta.size() <= Math.max(16, change.snapshot().endpoints().size() / 4)) {
            try {
                bus.publish(bus.own("registry-delta"), json.writeValueAsBytes(delta));
            } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
                throw new IllegalStateException("registry delta not serializable", e);
            }
        } else {
            publish(change.snapshot());
        }
    }

    @Scheduled(every = "${isthmus.registry.republish-interval:30s}", concurrentExecution = Scheduled.ConcurrentExecution.SKIP)
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
