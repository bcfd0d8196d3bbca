package dev.isthmus.controller.config;

import io.smallrye.config.ConfigMapping;
import io.smallrye.config.WithDefault;
import java.nio.file.Path;
import java.time.Duration;

/**
 * The controller's settings ({@code isthmus.*} in application.properties, or the matching
 * {@code ISTHMUS_*} environment variables, e.g. {@code ISTHMUS_CLUSTER_NAME}).
 */
@ConfigMapping(prefix = "isthmus")
public interface ControllerConfig {

    /** The federation this controller belongs to; the prefix of every NATS subject. */
    @WithDefault("acme")
    String federation();

    Cluster cluster();

    Nats nats();

    Registry registry();

    /** How often this controller announces itself to the federation. */
    @WithDefault("1s")
    Duration heartbeatInterval();

    /** Heartbeats a peer may miss before it is {@code Unreachable}. */
    @WithDefault("3")
    int missedHeartbeats();

    /** Where the controller keeps its state (peer snapshots, tokens). */
    @WithDefault(".isthmus-state/controller")
    Path stateDir();

    interface Cluster {
        /** This cluster's name, a DNS label such as {@code us-east}. */
        String name();

        /** The region this cluster runs in; the cluster name by default. */
        java.util.Optional<String> region();

        /** The zone within the region. */
        @WithDefault("zone-a")
        String zone();
    }

    interface Registry {
        /** A registration not refreshed for this long is removed. */
        @WithDefault("10s")
        Duration ttl();

        /** How often the full snapshot is re-published even without changes. */
        @WithDefault("5s")
        Duration republishInterval();
    }

    interface Nats {
        /** The regional NATS server(s), comma-separated. */
        @WithDefault("nats://127.0.0.1:4222")
        String url();

        /** Longest wait between reconnect attempts. */
        @WithDefault("2s")
        Duration maxReconnectWait();
    }
}
