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

    /**
     * The name of the federation this cluster founds when it issues its first join token while not
     * yet a member of any. A cluster that joins takes the federation's name from the token.
     */
    @WithDefault("acme")
    String federation();

    Admin admin();

    /** The HTTP URL of this cluster's trust bridge, whose bundle the controller federates (none: no bundle exchange). */
    @io.smallrye.config.WithName("trust-bridge.url")
    java.util.Optional<String> trustBridgeUrl();

    Workload workload();

    Membership membership();

    Cluster cluster();

    Nats nats();

    Registry registry();

    Gateway gateway();

    Xds xds();

    Policy policy();

    interface Policy {
        Git git();

        /**
         * The shared secret of the push webhook ({@code POST /api/v1/policy/webhook}): a call must carry
         * an HMAC-SHA256 of its body with it, as GitHub ({@code X-Hub-Signature-256: sha256=<hex>}) or
         * Gitea ({@code X-Gitea-Signature: <hex>}) send it. None: the webhook is refused.
         */
        java.util.Optional<String> webhookSecret();

        /** A file holding the webhook secret (instead of {@code webhook-secret}). */
        java.util.Optional<Path> webhookSecretFile();
    }

    interface Git {
        /** The policy repository (any URL JGit fetches: file path, file://, https://). None: this controller watches no repository. */
        java.util.Optional<String> url();

        @WithDefault("main")
        String branch();

        /** The directory within the repository that holds the policy (none: all of it). */
        java.util.Optional<String> path();

        @WithDefault("30s")
        Duration pollInterval();
    }

    interface Gateway {
        /**
         * {@code host:port} where other clusters reach this cluster's east-west gateway. Announced in
         * heartbeats; the other controllers point their sidecars' clusters for this cluster's services
         * at it. None: this cluster's services are not reachable from other clusters.
         */
        java.util.Optional<String> address();
    }

    interface Xds {
        /** Whether the controller serves xDS to its proxies. */
        @WithDefault("true")
        boolean enabled();

        /** Where the xDS server (ADS over gRPC) listens. */
        @WithDefault("0.0.0.0:15010")
        String listen();

        /** How often the controller checks whether registry or peers changed and rebuilds the proxies' snapshots. */
        @WithDefault("200ms")
        Duration rebuildInterval();
    }

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

    interface Admin {
        /** The admin credential itself (e.g. from a Kubernetes secret as ISTHMUS_ADMIN_TOKEN); wins over the file. */
        java.util.Optional<String> token();

        /**
         * File holding the admin credential (a bearer token) that guards every request that changes
         * state; made with a random value, owner-only, when missing. Default {@code <state-dir>/admin-token}.
         */
        java.util.Optional<Path> tokenFile();
    }

    interface Workload {
        /** The workload credential itself (ISTHMUS_WORKLOAD_TOKEN); wins over the file. */
        java.util.Optional<String> token();

        /**
         * File holding the credential sidecars present to register workloads (the admin credential
         * works too); made when missing. Default {@code <state-dir>/workload-token}.
         */
        java.util.Optional<Path> tokenFile();
    }

    interface Membership {
        /** Lifetime of a join token when the request names none. */
        @WithDefault("15m")
        Duration tokenTtl();

        /** Longest lifetime a join token may be given. */
        @WithDefault("24h")
        Duration maxTokenTtl();

        /** How long a join waits for the issuing cluster to answer over NATS. */
        @WithDefault("5s")
        Duration joinTimeout();

        /** After joining or starting, how long to wait for every member's registry before reporting Active anyway. */
        @WithDefault("5s")
        Duration syncTimeout();

        /** How often the roster is re-published even without changes. */
        @WithDefault("10s")
        Duration rosterRepublishInterval();
    }

    interface Registry {
        /** A registration not refreshed for this long is removed. */
        @WithDefault("10s")
        Duration ttl();

        /**
         * How often the full snapshot is re-published to every member even without changes, as a
         * Quarkus scheduler interval ({@code 60s}), or {@code off} (the default: heartbeats carry the
         * generation and hash, and a member that differs asks for the snapshot).
         */
        @WithDefault("off")
        String republishInterval();

        /**
         * A YAML or JSON file of endpoints ({@code endpoints: [{service, instance, address, port, ...}]})
         * for workloads without a sidecar that registers them; re-read when it changes.
         */
        java.util.Optional<Path> staticFile();

        /** How often the static file is checked for changes. */
        @WithDefault("2s")
        Duration staticFilePoll();

        Kubernetes kubernetes();
    }

    interface Kubernetes {
        /** Read Services and EndpointSlices from the Kubernetes API (in-cluster config or kubeconfig). */
        @WithDefault("false")
        boolean enabled();

        /** Namespaces to watch; all when empty. */
        java.util.Optional<java.util.List<String>> namespaces();

        /** The SPIFFE trust domain used for endpoint identities ({@code spiffe://<td>/ns/<ns>/sa/<sa>}). */
        java.util.Optional<String> trustDomain();
    }

    interface Nats {
        /** The regional NATS server(s), comma-separated. */
        @WithDefault("nats://127.0.0.1:4222")
        String url();

        /** Longest wait between reconnect attempts (they start at 250 ms and double, with jitter). */
        @WithDefault("2s")
        Duration maxReconnectWait();
    }
}
