package dev.isthmus.api.nats;

import dev.isthmus.api.names.ClusterName;
import dev.isthmus.api.names.FederationName;

/**
 * The NATS subjects of one federation. Every subject starts with {@code isthmus.<federation>.};
 * this class is the only place that spells them.
 */
public record Subjects(FederationName federation) {

    public String prefix() {
        return "isthmus." + federation.value() + ".";
    }

    /** Heartbeats of one cluster's controller. */
    public String heartbeat(ClusterName cluster) {
        return prefix() + "heartbeat." + cluster.value();
    }

    /** Heartbeats of every cluster. */
    public String heartbeatsAll() {
        return prefix() + "heartbeat.*";
    }

    /** Registry snapshots and deltas published by one cluster. */
    public String registry(ClusterName cluster) {
        return prefix() + "registry." + cluster.value();
    }

    /** Registry deltas of one cluster (changes since a given generation). */
    public String registryDelta(ClusterName cluster) {
        return prefix() + "registry-delta." + cluster.value();
    }

    public String registryAll() {
        return prefix() + "registry.*";
    }

    /** Request subject answered by every controller with its full registry snapshot. */
    public String registrySync() {
        return prefix() + "registry-sync";
    }

    /** Membership: every member's signed view of the roster (who joined, who left or was evicted). */
    public String membership() {
        return prefix() + "membership";
    }

    /** Join requests for tokens issued by one cluster (request-reply; the issuer answers). */
    public String join(ClusterName issuer) {
        return prefix() + "join." + issuer.value();
    }

    /** Every subject of this federation. */
    public String all() {
        return prefix() + ">";
    }

    /** The trust bundle of one cluster's trust domain, published by its controller. */
    public String trustBundle(ClusterName cluster) {
        return prefix() + "trust-bundle." + cluster.value();
    }

    public String trustBundlesAll() {
        return prefix() + "trust-bundle.*";
    }

    /** Accepted policy bundles, keyed by commit. */
    public String policy() {
        return prefix() + "policy";
    }
}
