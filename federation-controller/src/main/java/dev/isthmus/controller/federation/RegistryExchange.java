package dev.isthmus.controller.federation;

import com.fasterxml.jackson.databind.ObjectMapper;
import dev.isthmus.api.names.ClusterName;
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
 * not hold, or the generation it holds with another hash) asks that member alone for its snapshot.
 * Periodic full snapshots ({@code isthmus.registry.republish-interval}) are off by default.
 * Received registries are written to disk off the receive path.
 *
 * <p>Sync: after joining, after a restart and after every NATS reconnect the controller asks every
 * member for its snapshot (they answer to it alone); it reports itself {@code Active} once every
 * active member answered (or after {@code isthmus.membership.sync-timeout}), records how long that
 * took in {@code isthmus_federation_sync_duration_seconds}, and then publishes its own snapshot to
 * every member (after, so the members' answers do not compete with reading it).
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
    /** Reads and writes registries on the bus (endpoints as arrays). */
    private final ObjectMapper wire;
    private final MeterRegistry meters;
    private final PeerSnapshotStore store;
    private final Set<String> answered = ConcurrentHashMap.newKeySet();
    /** Members whose registry changed since it was last written to disk. */
    private final Set<String> pendingSaves = ConcurrentHashMap.newKeySet();
    private final Map<String, Long> lastAsked = new ConcurrentHashMap<>();
    private final Map<String, Long> lastSaved = new ConcurrentHashMap<>();
    private final Map<String, Long> behindSince = new ConcurrentHashMap<>();
    private final Timer propagation;
    private volatile long syncStartedNanos = -1;
    private volatile EncodedSnapshot encodedCache;
    /** Readers of full registries: one thread per CPU, a member always on the same one. */
    private final java.util.concurrent.ExecutorService[] workers = new java.util.concurrent.ExecutorService[Math.max(2,
            Runtime.getRuntime().availableProcessors())];

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
        // at 0 from the start: the dashboards show 0, and rate() counts the first stale message or gap
        meters.counter("isthmus_federation_delta_gaps");
        meters.counter("isthmus_federation_messages_stale", "subject", "registry-delta");
        meters.counter("isthmus_federation_messages_stale", "subject", "registry");
        this.store = new PeerSnapshotStore(config.stateDir(), json);
        this.wire = Wire.mapper(json);
        for (int i = 0; i < workers.length; i++) {
            workers[i] = java.util.concurrent.Executors.newSingleThreadExecutor(
                    Thread.ofPlatform().daemon(true).name("registry-reader-" + i).factory());
        }
        this.propagation = Timer.builder("isthmus_federation_propagation")
                .description("From a change in a peer's registry (its clock) to the change applied here")
                .publishPercentiles(0.5, 0.99).register(meters);
    }

    void start(@Observes StartupEvent event) {
        catalog.acceptLocal(registry.snapshot());
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
        bus.on("registry", msg -> workers[Math.floorMod(msg.sender().hashCode(), workers.length)].execute(() -> {
            try {
                receiveSnapshot(msg);
            } catch (RuntimeException e) {
                bus.reject("registry", "malformed", "registry", msg.sender() + ": " + e.getMessage());
            }
        }));
        bus.on("registry-delta", msg -> {
            RegistryDelta delta;
            try {
                delta = wire.readValue(msg.data(), RegistryDelta.class);
            } catch (IOException e) {
                throw new UncheckedIOException("registry delta is not valid JSON", e);
            }
            if (!msg.sender().equals(delta.cluster())) {
                bus.reject("registry-delta", "sender_mismatch", "registry-delta", "delta of " + delta.cluster() + " signed by " + msg.sender());
                return;
            }
            switch (catalog.accept(delta)) {
                case APPLIED -> {
                    pendingSaves.add(delta.cluster());
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
                long t0 = System.nanoTime();
                sendTo(msg.sender(), registry.snapshot());
                LOG.debugf("event=sync_answered to=%s took_ms=%d", msg.sender(), TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - t0));
            }
        });
        nats.onConnected(this::sync);
    }

    /**
     * Handles a full registry (a broadcast or an answer to this controller's sync request). Runs on
     * one of {@link #workers}, chosen by sender, so the registries of different members are read in
     * parallel and those of one member in order.
     */
    private void receiveSnapshot(FederationBus.Inbound msg) {
        RegistrySnapshot snapshot;
        try {
            snapshot = wire.readValue(msg.data(), RegistrySnapshot.class);
        } catch (IOException e) {
            throw new UncheckedIOException("registry snapshot is not valid JSON", e);
        }
        if (!msg.sender().equals(snapshot.cluster())) {
            bus.reject("registry", "sender_mismatch", "registry", "snapshot of " + snapshot.cluster() + " signed by " + msg.sender());
            return;
        }
        switch (catalog.accept(snapshot)) {
            case APPLIED -> {
                pendingSaves.add(snapshot.cluster());
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
        long started = syncStartedNanos;
        if (started >= 0) {
            LOG.debugf("event=sync_answer cluster=%s after_ms=%d endpoints=%d", snapshot.cluster(),
                    TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - started), snapshot.endpoints().size());
        }
        checkSynced();
    }
    /**
     * Asks every member for its snapshot (they answer to this controller alone). A sync already
     * waiting for answers is not restarted, so two triggers close together cost one round.
     */
    private synchronized void sync() {
        if (membership.roster().isEmpty() || syncStartedNanos >= 0) {
            return;
        }
        answered.clear();
        syncStartedNanos = System.nanoTime();
        bus.publish("registry-sync", syncRequest(List.of()));
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
     * Called with every verified heartbeat, the registry's anti-entropy: a member that announces a
     * generation this controller does not hold for more than two seconds (a lost delta), or the
     * generation held with another content hash, is asked for its snapshot.
     */
    void announced(String cluster, long generation, String hash) {
        long held = catalog.generation(cluster);
        if (generation == held && hash != null && !catalog.hash(cluster).map(hash::equals).orElse(true)) {
            requestSnapshot(cluster, "generation " + generation + " held with another content hash");
            return;
        }
        if (generation <= held) {
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

    /**
     * Writes received registries to disk off the receive path: a member's registry at most every
     * 10 s (the newest one then), and at once when none was written for it yet.
     */
    @Scheduled(every = "1s", concurrentExecution = Scheduled.ConcurrentExecution.SKIP)
    void flushStore() {
        long now = System.currentTimeMillis();
        for (String cluster : List.copyOf(pendingSaves)) {
            Long last = lastSaved.get(cluster);
            if (last != null && now - last < 10_000) {
                continue;
            }
            pendingSaves.remove(cluster);
            var snapshot = catalog.snapshot(cluster);
            if (snapshot.isPresent() && membership.roster().map(r -> r.isActive(cluster)).orElse(false)) {
                store.save(snapshot.get());
                lastSaved.put(cluster, now);
            }
        }
    }

    void flushOnShutdown(@Observes io.quarkus.runtime.ShutdownEvent event) {
        lastSaved.clear();
        flushStore();
    }

    private Set<String> missing() {
        var missing = new TreeSet<String>();
        membership.peers().stream().filter(Roster.Member::active).map(Roster.Member::cluster).forEach(missing::add);
        missing.removeAll(answered);
        return missing;
    }

    private synchronized void checkSynced() {
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
        publish(registry.snapshot());
    }

    /** Gives up waiting for members that do not answer (they are unreachable), so the cluster reports Active. */
    @Scheduled(every = "1s", concurrentExecution = Scheduled.ConcurrentExecution.SKIP)
    synchronized void syncDeadline() {
        long started = syncStartedNanos;
        if (started >= 0 && System.nanoTime() - started > config.membership().syncTimeout().toNanos()) {
            syncStartedNanos = -1;
            LOG.warnf("event=registry_sync_incomplete missing=%s waited=%s (kept their last known registries)", missing(),
                    config.membership().syncTimeout());
            membership.markSynced();
            publish(registry.snapshot());
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
            }
        }
    }

    /** Publishes a local change: a delta when it is small against the registry, else the whole snapshot. */
    void onChange(@Observes LocalRegistry.RegistryChanged change) {
        catalog.acceptLocal(change.snapshot());
        var delta = RegistryDelta.between(change.previous(), change.snapshot(), change.changedAtMillis());
        if (delta.size() <= Math.max(16, change.snapshot().endpoints().size() / 4)) {
            try {
                bus.publish(bus.own("registry-delta"), wire.writeValueAsBytes(delta));
            } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
                throw new IllegalStateException("registry delta not serializable", e);
            }
        } else {
            publish(change.snapshot());
        }
    }

    /** Off by default: heartbeats carry generation and hash, and a member that differs asks (see {@link #announced}). */
    @Scheduled(every = "${isthmus.registry.republish-interval:off}", concurrentExecution = Scheduled.ConcurrentExecution.SKIP)
    void republish() {
        publish(registry.snapshot());
    }

    /** Expires silent registrations promptly (the TTL check runs every second). */
    @Scheduled(every = "1s", concurrentExecution = Scheduled.ConcurrentExecution.SKIP)
    void expire() {
        registry.expire();
    }

    /** Sends the snapshot to one member only, in answer to its sync request. */
    private void sendTo(String requester, RegistrySnapshot snapshot) {
        bus.publish("registry-to." + ClusterName.of(requester).value(), encoded(snapshot));
    }

    private void publish(RegistrySnapshot snapshot) {
        bus.publish(bus.own("registry"), encoded(snapshot));
    }

    /** The snapshot's wire form, made once per generation (several members may ask for it at once). */
    private FederationBus.Encoded encoded(RegistrySnapshot snapshot) {
        var cached = encodedCache;
        if (cached != null && cached.generation() == snapshot.generation()) {
            return cached.encoded();
        }
        try {
            var fresh = new EncodedSnapshot(snapshot.generation(), FederationBus.encode(wire.writeValueAsBytes(snapshot)));
            encodedCache = fresh;
            return fresh.encoded();
        } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
            throw new IllegalStateException("registry snapshot not serializable", e);
        }
    }

    private record EncodedSnapshot(long generation, FederationBus.Encoded encoded) {
    }
}
