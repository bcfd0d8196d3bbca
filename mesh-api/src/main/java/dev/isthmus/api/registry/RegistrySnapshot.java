package dev.isthmus.api.registry;

import java.math.BigInteger;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.Collection;
import java.util.Comparator;
import java.util.List;

/**
 * The whole local registry of one cluster, published on {@code isthmus.<federation>.registry.<cluster>}.
 * Receivers keep the snapshot with the highest generation per cluster and drop older ones.
 *
 * <p>The content hash is a multiset hash: the sum, modulo 2^256, of the SHA-256 of every endpoint's
 * canonical form. It does not depend on order, and a delta updates it from the endpoints it touches
 * alone ({@link #combine}), so applying a one-endpoint change to a registry of thousands costs no
 * rehash of the rest. It detects corruption and inconsistent application; authenticity comes from
 * the message signature, not from this hash.
 *
 * @param cluster the publishing cluster
 * @param generation increases with every change of the cluster's registry (also across restarts)
 * @param hash the multiset hash of the endpoints, 64 hex digits; equal hashes mean equal content
 * @param endpoints every local endpoint, ordered by instance
 */
public record RegistrySnapshot(String cluster, long generation, String hash, List<Endpoint> endpoints) {

    private static final BigInteger MODULUS = BigInteger.ONE.shiftLeft(256);
    private static final ThreadLocal<MessageDigest> SHA256 = ThreadLocal.withInitial(() -> {
        try {
            return MessageDigest.getInstance("SHA-256");
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("SHA-256 is always available", e);
        }
    });

    public RegistrySnapshot {
        endpoints = endpoints == null ? List.of() : List.copyOf(endpoints);
    }

    public static RegistrySnapshot of(String cluster, long generation, Collection<Endpoint> endpoints) {
        var sorted = endpoints.stream().sorted(Comparator.comparing(Endpoint::instance)).toList();
        return new RegistrySnapshot(cluster, generation, hashOf(sorted), sorted);
    }

    /** True if the hash matches the endpoints (the message was not altered or truncated). */
    public boolean consistent() {
        return hashOf(endpoints).equals(hash);
    }

    static BigInteger digest(Endpoint e) {
        return new BigInteger(1, SHA256.get().digest(e.canonical().getBytes(StandardCharsets.UTF_8)));
    }

    public static String hashOf(Collection<Endpoint> endpoints) {
        BigInteger sum = BigInteger.ZERO;
        for (Endpoint e : endpoints) {
            sum = sum.add(digest(e));
        }
        return hex(sum.mod(MODULUS));
    }

    /** The hash of a registry with hash {@code hash} after {@code removed} left it and {@code added} joined it. */
    public static String combine(String hash, Collection<Endpoint> removed, Collection<Endpoint> added) {
        BigInteger sum = new BigInteger(hash, 16);
        for (Endpoint e : removed) {
            sum = sum.subtract(digest(e));
        }
        for (Endpoint e : added) {
            sum = sum.add(digest(e));
        }
        return hex(sum.mod(MODULUS));
    }

    private static String hex(BigInteger v) {
        String s = v.toString(16);
        return "0".repeat(64 - s.length()) + s;
    }
}
