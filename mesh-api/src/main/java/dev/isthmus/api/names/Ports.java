package dev.isthmus.api.names;

/**
 * Default ports of every component (DESIGN.md, "Ports"). The local federation shifts them per
 * region; this is the one place that names them.
 */
public final class Ports {
    public static final int CONTROLLER_HTTP = 8080;
    public static final int CONTROLLER_XDS = 15010;
    public static final int TRUST_BRIDGE_GRPC = 15012;
    public static final int PROXY_ADMIN = 15000;
    public static final int SIDECAR_OUTBOUND = 15001;
    public static final int SIDECAR_INBOUND = 15006;
    public static final int EAST_WEST_GATEWAY = 15443;
    public static final int NATS_CLIENT = 4222;
    public static final int NATS_GATEWAY = 7222;

    private Ports() {
    }
}
