package dev.isthmus.api.registry;

import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.Comparator;
import java.util.HexFormat;
import java.util.List;

/**
 * The whole local registry of one cluster, published on {@code isthmus.<federation>.registry.<cluster>}.
 * Receivers keep the snapshot with the highest generation per cluster and drop older ones.
 *
 * @param cluster the publishing cluster
 * @param generation increases with every change of the cluster's registry (also across restarts)
 * @param hash SHA-256 of the endpoints' canonical forms, sorted; equal hashes mean equal content
 * @param endpoints every local endpoint
 */
public record RegistrySnapshot(String cluster, long generation, String hash, List<Endpoint> endpoints) {

    public RegistrySnapshot {
        endpoints = endpoints == null ? List.of() : List.copyOf(endpoints);
    }

    public static RegistrySnapshot of(String cluster, long generation, List<Endpoint> endpoints) {
        var sorted = endpoints.stream().sorted(Comparator.comparing(Endpoint::canonical)).toList();
        return new RegistrySnapshot(cluster, generation, hashOf(sorted), sorted);
    }

    /** True if the hash matches the endpoints (the message was not altered or truncated). */
    public boolean consistent() {
        return hashOf(endpoints.stream().sorted(Comparator.comparing(Endpoint::canonical)).toList()).equals(hash);
    }

    private static String hashOf(List<Endpoint> sorted) {
        try {
            var digest = MessageDigest.getInstance("SHA-256");
            for (Endpoint e : sorted) {
                digest.update(e.canonical().getBytes(StandardCharsets.UTF_8));
                digest.update((byte) '\n');
            }
            return HexFormat.of().formatHex(digest.digest());
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("SHA-256 is always available", e);
        }
    }
}
