package dev.isthmus.controller.federation;

import dev.isthmus.api.names.PeerState;
import dev.isthmus.api.registry.Endpoint;
import dev.isthmus.api.registry.RegistrySnapshot;
import jakarta.enterprise.context.ApplicationScoped;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;

/**
 * The federated catalog: the newest registry snapshot of every cluster (this one included). A
 * snapshot older than or equal to the one held is dropped, so a replayed or reordered message never
 * rolls a cluster back.
 */
@ApplicationScoped
public class FederatedCatalog {

    /** Why {@link #accept} kept or dropped a snapshot. */
    public enum Outcome { APPLIED, STALE, INCONSISTENT, GAP }

    /** One endpoint as the catalog shows it, with what is known of its cluster. */
    public record CatalogEndpoint(Endpoint endpoint, String clusterState) {
    }

    /** One service with its endpoints in every cluster. */
    public record CatalogService(String service, Map<String, List<CatalogEndpoint>> clusters) {
    }

    private final ConcurrentHashMap<String, RegistrySnapshot> snapshots = new ConcurrentHashMap<>();

    public Outcome accept(RegistrySnapshot snapshot) {
        if (!snapshot.consistent()) {
            return Outcome.INCONSISTENT;
        }
        var result = new Outcome[] {Outcome.STALE};
        snapshots.compute(snapshot.cluster(), (k, held) -> {
            if (held != null && held.generation() >= snapshot.generation()) {
                return held;
            }
            result[0] = Outcome.APPLIED;
            return snapshot;
        });
        return result[0];
    }

    /**
     * Applies a delta to the held snapshot of its cluster: {@code GAP} if the held generation is not
     * the delta's base (a delta was missed: ask for the snapshot), {@code INCONSISTENT} if the result
     * does not have the delta's hash, {@code STALE} if the held snapshot is as new or newer.
     */
    public Outcome accept(dev.isthmus.api.registry.RegistryDelta delta) {
        var result = new Outcome[] {Outcome.GAP};
        snapshots.compute(delta.cluster(), (k, held) -> {
            if (held == null) {
                return null;
            }
            if (held.generation() >= delta.generation()) {
                result[0] = Outcome.STALE;
                return held;
            }
            if (held.generation() != delta.baseGeneration()) {
                return held;
            }
            var applied = delta.applyTo(held);
            if (applied.isEmpty()) {
                result[0] = Outcome.INCONSISTENT;
                return held;
            }
            result[0] = Outcome.APPLIED;
            return applied.get();
        });
        return result[0];
    }

    /** The snapshot held for a cluster, if any. */
    public java.util.Optional<RegistrySnapshot> snapshot(String cluster) {
        return java.util.Optional.ofNullable(snapshots.get(cluster));
    }

    /** Drops a cluster's registry (it left or was evicted). */
    public void remove(String cluster) {
        snapshots.remove(cluster);
    }

    /** Drops every registry but this cluster's (it left the federation). */
    public void retainOnly(String cluster) {
        snapshots.keySet().removeIf(c -> !c.equals(cluster));
    }

    /** The generation held for a cluster, or -1. */
    public long generation(String cluster) {
        var s = snapshots.get(cluster);
        return s == null ? -1 : s.generation();
    }

    /** Every service, each with its endpoints grouped by cluster; peer states label remote clusters. */
    public List<CatalogService> services(Map<String, PeerState> peerStates, String localCluster) {
        var byService = new TreeMap<String, TreeMap<String, List<CatalogEndpoint>>>();
        for (RegistrySnapshot s : snapshots.values()) {
            PeerState peer = peerStates.get(s.cluster());
            boolean local = s.cluster().equals(localCluster);
            if (!local && (peer == null || peer == PeerState.LEFT)) {
                continue;
            }
            String state = local ? "Local" : peer.display();
            for (Endpoint e : s.endpoints()) {
                byService.computeIfAbsent(e.service(), k -> new TreeMap<>())
                        .computeIfAbsent(e.cluster(), k -> new ArrayList<>())
                        .add(new CatalogEndpoint(e, state));
            }
        }
        var out = new ArrayList<CatalogService>();
        byService.forEach((service, clusters) -> {
            clusters.values().forEach(l -> l.sort(Comparator.comparing(c -> c.endpoint().instance())));
            out.add(new CatalogService(service, clusters));
        });
        return out;
    }
}
