package dev.isthmus.api.names;

/**
 * The name of a cluster in a federation: a DNS label (RFC 1123), such as {@code us-east}.
 * Construction validates, so any instance is a valid label.
 */
public record ClusterName(String value) implements Comparable<ClusterName> {

    public ClusterName {
        DnsLabel.require("cluster name", value);
    }

    public static ClusterName of(String value) {
        return new ClusterName(value);
    }

    /** The SPIFFE trust domain of this cluster by default: {@code <cluster>.<federation>.isthmus}. */
    public String defaultTrustDomain(FederationName federation) {
        return value + "." + federation.value() + ".isthmus";
    }

    @Override
    public int compareTo(ClusterName o) {
        return value.compareTo(o.value);
    }

    @Override
    public String toString() {
        return value;
    }
}
