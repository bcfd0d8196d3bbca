package dev.isthmus.api.registry;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * A change of one cluster's registry, published on {@code isthmus.<federation>.registry-delta.<cluster>}
 * instead of the whole snapshot. It applies only to the snapshot of generation {@code baseGeneration};
 * the result must have content hash {@code hash}. A receiver holding another generation asks the
 * cluster for its full snapshot instead.
 *
 * @param cluster the publishing cluster
 * @param baseGeneration the generation this delta applies to
 * @param generation the generation after it
 * @param hash the content hash of the registry after it
 * @param upserted endpoints added or changed (by instance)
 * @param removed instances removed
 * @param changedAtMillis the sender's clock when the change happened (for propagation latency)
 */
public record RegistryDelta(String cluster, long baseGeneration, long generation, String hash, List<Endpoint> upserted,
        List<String> removed, long changedAtMillis) {

    public RegistryDelta {
        upserted = upserted == null ? List.of() : List.copyOf(upserted);
        removed = removed == null ? List.of() : List.copyOf(removed);
    }

    /** The delta from {@code before} to {@code after}, both of one cluster. */
    public static RegistryDelta between(RegistrySnapshot before, RegistrySnapshot after, long changedAtMillis) {
        Map<String, Endpoint> old = new HashMap<>();
        before.endpoints().forEach(e -> old.put(e.instance(), e));
        var upserted = new ArrayList<Endpoint>();
        var seen = new HashSet<String>();
        for (Endpoint e : after.endpoints()) {
            seen.add(e.instance());
            if (!e.equals(old.get(e.instance()))) {
                upserted.add(e);
            }
        }
        var removed = old.keySet().stream().filter(i -> !seen.contains(i)).sorted().toList();
        return new RegistryDelta(after.cluster(), before.generation(), after.generation(), after.hash(), upserted, removed,
                changedAtMillis);
    }

    public int size() {
        return upserted.size() + removed.size();
    }

    /**
     * The snapshot this delta makes of {@code base}; empty if {@code base} is not of the delta's base
     * generation or the result does not have the delta's hash.
     */
    public Optional<RegistrySnapshot> applyTo(RegistrySnapshot base) {
        if (base.generation() != baseGeneration || !base.cluster().equals(cluster)) {
            return Optional.empty();
        }
        Map<String, Endpoint> byInstance = new HashMap<>(base.endpoints().size() * 2);
        base.endpoints().forEach(e -> byInstance.put(e.instance(), e));
        if (!applyInPlace(byInstance, base.hash())) {
            return Optional.empty();
        }
        var list = new ArrayList<>(byInstance.values());
        list.sort(Comparator.comparing(Endpoint::instance));
        return Optional.of(new RegistrySnapshot(cluster, generation, hash, list));
    }

    /**
     * Applies the delta to a registry held as endpoints by instance, whose content hash is
     * {@code baseHash}, in time proportional to the delta's size. The map changes only if the result
     * has the delta's hash; returns whether it did.
     */
    public boolean applyInPlace(Map<String, Endpoint> byInstance, String baseHash) {
        var gone = new ArrayList<Endpoint>();
        var touched = new HashSet<String>();
        for (String r : removed) {
            Endpoint old = byInstance.get(r);
            if (old != null && touched.add(r)) {
                gone.add(old);
            }
        }
        for (Endpoint e : upserted) {
            Endpoint old = byInstance.get(e.instance());
            if (old != null && touched.add(e.instance())) {
                gone.add(old);
            }
        }
        if (!RegistrySnapshot.combine(baseHash, gone, upserted).equals(hash)) {
            return false;
        }
        removed.forEach(byInstance::remove);
        upserted.forEach(e -> byInstance.put(e.instance(), e));
        return true;
    }
}
