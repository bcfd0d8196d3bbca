package dev.isthmus.api.names;

import java.util.Objects;
import java.util.regex.Pattern;

/**
 * The name of a cluster in a federation: a DNS label (RFC 1123), such as {@code us-east}.
 * Construction validates, so any instance is a valid label.
 */
public record ClusterName(String value) implements Comparable<ClusterName> {

    private static final Pattern DNS_LABEL = Pattern.compile("[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?");

    public ClusterName {
        Objects.requireNonNull(value, "cluster name");
        if (!DNS_LABEL.matcher(value).matches()) {
            throw new IllegalArgumentException("cluster name '" + value
                    + "' is not a DNS label: use 1-63 lower-case letters, digits or '-', starting and ending with a letter or digit");
        }
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
