package dev.isthmus.controller.federation;

import dev.isthmus.api.names.PeerState;
import dev.isthmus.api.registry.Endpoint;
import dev.isthmus.api.registry.RegistryDelta;
import dev.isthmus.api.registry.RegistrySnapshot;
import jakarta.enterprise.context.ApplicationScoped;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;

/**
 * The federated catalog: the newest registry of every cluster (this one included), held as
 * endpoints by instance so a delta applies in time proportional to its size. A snapshot older than
 * or equal to the one held is dropped, so a replayed or reordered message never rolls a cluster back.
 */
@ApplicationScoped
public class FederatedCatalog {

    /** Why {@link #accept} kept or dropped a snapshot or delta. */
    public enum Outcome { APPLIED, STALE, INCONSISTENT, GAP }

    /** One endpoint as the catalog shows it, with what is known of its cluster. */
    public record CatalogEndpoint(Endpoint endpoint, String clusterState) {
    }

    /** One service with its endpoints in every cluster. */
    public record CatalogService(String service, Map<String, List<CatalogEndpoint>> clusters) {
    }

    /** One cluster's registry; guarded by its own monitor. */
    private static final class Held {
        final String cluster;
        long generation;
        String hash;
        final Map<String, Endpoint> byInstance;
        RegistrySnapshot materialized;

        Held(RegistrySnapshot s) {
            cluster = s.cluster();
            generation = s.generation();
            hash = s.hash();
            byInstance = new HashMap<>(s.endpoints().size() * 2);
            s.endpoints().forEach(e -> byInstance.put(e.instance(), e));
            materialized = s;
        }

        synchronized RegistrySnapshot snapshot() {
            if (materialized == null) {
                var list = new ArrayList<>(byInstance.values());
                list.sort(Comparator.comparing(Endpoint::instance));
                materialized = new RegistrySnapshot(cluster, generation, hash, list);
            }
            return materialized;
        }
    }

    private final ConcurrentHashMap<String, Held> clusters = new ConcurrentHashMap<>();

    public Outcome accept(RegistrySnapshot snapshot) {
        if (!snapshot.consistent()) {
            return Outcome.INCONSISTENT;
        }
        return acceptChecked(snapshot);
    }

    /** Accepts this cluster's own snapshot, consistent by construction (no rehash). */
    public Outcome acceptLocal(RegistrySnapshot snapshot) {
        return acceptChecked(snapshot);
    }

    private Outcome acceptChecked(RegistrySnapshot snapshot) {
        var result = new Outcome[] {Outcome.STALE};
        clusters.compute(snapshot.cluster(), (k, held) -> {
            if (held != null && held.generation >= snapshot.generation()) {
                return held;
            }
            result[0] = Outcome.APPLIED;
            return new Held(snapshot);
        });
        return result[0];
    }

    /**
     * Applies a delta to the held registry of its cluster: {@code GAP} if the held generation is not
     * the delta's base (a delta was missed: ask for the snapshot), {@code INCONSISTENT} if the result
     * would not have the delta's hash (nothing changes), {@code STALE} if the held one is as new.
     */
    public Outcome accept(RegistryDelta delta) {
        Held held = clusters.get(delta.cluster());
        if (held == null) {
            return Outcome.GAP;
        }
        synchronized (held) {
            if (held.generation >= delta.generation()) {
                return Outcome.STALE;
            }
            if (held.generation != delta.baseGeneration()) {
                return Outcome.GAP;
            }
            if (!delta.applyInPlace(held.byInstance, held.hash)) {
                return Outcome.INCONSISTENT;
            }
            held.generation = delta.generation();
            held.hash = delta.hash();
            held.materialized = null;
            return Outcome.APPLIED;
        }
    }

    /** The registry held for a cluster, if any. */
    public Optional<RegistrySnapshot> snapshot(String cluster) {
        return Optional.ofNullable(clusters.get(cluster)).map(Held::snapshot);
    }

    /** The content hash held for a cluster, if any. */
    public Optional<String> hash(String cluster) {
        Held h = clusters.get(cluster);
        if (h == null) {
            return Optional.empty();
        }
        synchronized (h) {
            return Optional.of(h.hash);
        }
    }

    /** Drops a cluster's registry (it left or was evicted). */
    public void remove(String cluster) {
        clusters.remove(cluster);
    }

    /** Drops every registry but this cluster's (it left the federation). */
    public void retainOnly(String cluster) {
        clusters.keySet().removeIf(c -> !c.equals(cluster));
    }

    /** The generation held for a cluster, or -1. */
    public long generation(String cluster) {
        Held h = clusters.get(cluster);
        if (h == null) {
            return -1;
        }
        synchronized (h) {
            return h.generation;
        }
    }

    /** Every service, each with its endpoints grouped by cluster; peer states label remote clusters. */
    public List<CatalogService> services(Map<String, PeerState> peerStates, String localCluster) {
        var byService = new TreeMap<String, TreeMap<String, List<CatalogEndpoint>>>();
        for (Held h : clusters.values()) {
            PeerState peer = peerStates.get(h.cluster);
            boolean local = h.cluster.equals(localCluster);
            if (!local && (peer == null || peer == PeerState.LEFT)) {
                continue;
            }
            String state = local ? "Local" : peer.display();
            List<Endpoint> endpoints;
            synchronized (h) {
                endpoints = List.copyOf(h.byInstance.values());
            }
            for (Endpoint e : endpoints) {
                byService.computeIfAbsent(e.service(), k -> new TreeMap<>())
                        .computeIfAbsent(e.cluster(), k -> new ArrayList<>())
                        .add(new CatalogEndpoint(e, state));
            }
        }
        var out = new ArrayList<CatalogService>();
        byService.forEach((service, byCluster) -> {
            byCluster.values().forEach(l -> l.sort(Comparator.comparing(c -> c.endpoint().instance())));
            out.add(new CatalogService(service, byCluster));
        });
        return out;
    }
}
