package dev.isthmus.trust;

import io.smallrye.config.ConfigMapping;
import io.smallrye.config.WithDefault;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Optional;

/** The trust bridge's settings ({@code isthmus.*}, or {@code ISTHMUS_*} environment variables). */
@ConfigMapping(prefix = "isthmus")
public interface TrustBridgeConfig {

    @WithDefault("acme")
    String federation();

    Cluster cluster();

    Ca ca();

    Bootstrap bootstrap();

    Vault vault();

    Admin admin();

    Controller controller();

    interface Controller {
        /** This cluster's controller (HTTP), whose federated trust bundles are added to the bundle; none: own roots only. */
        Optional<String> url();
    }

    interface Admin {
        /** The admin credential (bearer token) for state-changing endpoints (root rotation); wins over the file. */
        Optional<String> token();

        /** File holding it; without either, rotation over REST is refused. */
        Optional<Path> tokenFile();
    }

    /** The {@code vault} backend's settings. */
    interface Vault {
        /** e.g. {@code https://vault.example:8200}. */
        Optional<String> address();

        /** A Vault token (VAULT_TOKEN style); or use {@code token-file}, or AppRole. */
        Optional<String> token();

        Optional<Path> tokenFile();

        AppRole approle();

        /** The PKI mount of this trust domain; {@code pki-isthmus-<cluster>} by default. */
        Optional<String> pkiMount();

        /** The PKI role that signs workload certificates. */
        @WithDefault("svid")
        String role();

        /** The KV v2 mount where the trust bundle is kept. */
        @WithDefault("secret")
        String kvMount();

        /** Make the mount, root and role when missing; false when an operator provisions them. */
        @WithDefault("true")
        boolean provision();

        interface AppRole {
            Optional<String> roleId();

            Optional<String> secretId();

            Optional<Path> secretIdFile();
        }
    }

    interface Bootstrap {
        /** The bootstrap credential proxies present to get a certificate (ISTHMUS_BOOTSTRAP_TOKEN); wins over the file. */
        Optional<String> token();

        /** File holding it (the cluster's workload join secret in the local default). */
        Optional<Path> tokenFile();

        /**
         * Also accept Kubernetes service-account tokens (checked with the TokenReview API): such a
         * token may ask only for {@code spiffe://<trust-domain>/ns/<its namespace>/sa/<its account>}.
         */
        @WithDefault("false")
        boolean kubernetes();

        /** Audiences the service-account token must be for (TokenReview {@code spec.audiences}); none by default. */
        Optional<java.util.List<String>> kubernetesAudiences();
    }

    interface Cluster {
        String name();

        /** The SPIFFE trust domain; {@code <cluster>.<federation>.isthmus} by default. */
        Optional<String> trustDomain();
    }

    interface Ca {
        /** {@code embedded} (keys on disk) or {@code vault}. */
        @WithDefault("embedded")
        String backend();

        /** Where the embedded CA keeps its root key and certificate (owner-only permissions). */
        @WithDefault(".isthmus-state/trust-bridge")
        Path dir();

        /** Lifetime of a root made by the embedded CA. */
        @WithDefault("3650d")
        Duration rootTtl();

        Rotation rotation();

        interface Rotation {
            /**
             * How long a new root is only distributed (in every bundle, not yet signing), so every
             * proxy trusts it before the first certificate it signed is seen.
             */
            @WithDefault("5m")
            Duration distributionPeriod();
        }

        /** Lifetime of a workload certificate when the request names none. */
        @WithDefault("24h")
        Duration svidTtl();

        /** Longest lifetime a workload certificate may be given. */
        @WithDefault("24h")
        Duration maxSvidTtl();
    }
}
