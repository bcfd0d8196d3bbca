package dev.isthmus.proxy;

/**
 * Names of the proxies' metrics and labels (Istio's standard metrics with the {@code isthmus_}
 * prefix). Every meter of the data plane is named here and nowhere else.
 */
public final class ProxyMetrics {
    public static final String REQUESTS = "isthmus_requests";
    public static final String REQUEST_DURATION = "isthmus_request_duration";
    public static final String CONNECTIONS_OPENED = "isthmus_tcp_connections_opened";
    public static final String CONNECTIONS_CLOSED = "isthmus_tcp_connections_closed";
    public static final String CONNECTIONS_REJECTED = "isthmus_tcp_connections_rejected";
    public static final String BYTES_SENT = "isthmus_tcp_sent_bytes";
    public static final String BYTES_RECEIVED = "isthmus_tcp_received_bytes";
    public static final String UPSTREAM_CONNECT_FAILURES = "isthmus_upstream_connect_failures";
    /** Connections tried on another endpoint after a connect or upstream handshake failure. */
    public static final String UPSTREAM_RETRIES = "isthmus_upstream_connect_retries";
    /**
     * HTTP/2 streams sent again after the upstream refused them (REFUSED_STREAM, or past its GOAWAY)
     * where the route's retry policy does not retry refused streams, by listener.
     */
    public static final String REFUSED_STREAMS_RESENT = "isthmus_upstream_refused_streams_resent";
    /** HTTP/1.1 requests sent again on a new connection after a kept-alive one closed under them, by listener. */
    public static final String STALE_CONNECTION_RESENDS = "isthmus_upstream_stale_connection_resends";
    /** TLS handshakes by listener, side (downstream: accepted; upstream: dialled) and result. */
    public static final String TLS_HANDSHAKES = "isthmus_tls_handshakes";
    /** Connections a permissive listener served without TLS. */
    public static final String PLAINTEXT_CONNECTIONS = "isthmus_plaintext_connections";

    public static final String LABEL_LISTENER = "listener";
    public static final String LABEL_REASON = "reason";
    public static final String LABEL_SOURCE_CLUSTER = "source_cluster";
    public static final String LABEL_DESTINATION_CLUSTER = "destination_cluster";
    public static final String LABEL_DESTINATION_SERVICE = "destination_service";
    public static final String LABEL_RESPONSE_CODE = "response_code";

    private ProxyMetrics() {
    }
}
