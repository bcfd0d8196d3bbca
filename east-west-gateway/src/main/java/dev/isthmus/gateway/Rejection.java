package dev.isthmus.gateway;

/** Why the gateway closed a connection without relaying it. The label value of the rejection metric. */
public enum Rejection {
    NOT_TLS("not_tls"),
    NO_SNI("no_sni"),
    UNKNOWN_SNI("unknown_sni"),
    CLIENT_HELLO_INVALID("client_hello_invalid"),
    CLIENT_HELLO_TIMEOUT("client_hello_timeout"),
    UPSTREAM_UNREACHABLE("upstream_unreachable"),
    TOO_MANY_CONNECTIONS("too_many_connections"),
    TOO_MANY_FROM_SOURCE("too_many_from_source"),
    DRAINING("draining"),
    /** The route drops this share of its traffic (xDS {@code drop_overloads}: the cluster is isolated for a drill). */
    DROP_OVERLOAD("drop_overload");

    private final String label;

    Rejection(String label) {
        this.label = label;
    }

    public String label() {
        return label;
    }
}
