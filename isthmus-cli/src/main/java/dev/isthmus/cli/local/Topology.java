package dev.isthmus.cli.local;

import dev.isthmus.api.names.ClusterName;
import java.net.URI;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The local federation's layout: for each region, its NATS server, controller, trust bridge,
 * east-west gateway and the demo shop's services each behind a sidecar, on loopback ports that never
 * collide. Region {@code i} owns the ports {@code basePort + 100*i} to {@code basePort + 100*i + 99}.
 */
public record Topology(String federation, List<String> regions, int basePort, Path home, Path stateDir, String javaCommand,
        Map<String, Map<String, String>> extraEnvironment, java.util.Set<String> absent) {

    public Topology(String federation, List<String> regions, int basePort, Path home, Path stateDir, String javaCommand) {
        this(federation, regions, basePort, home, stateDir, javaCommand, Map.of(), java.util.Set.of());
    }

    public Topology(String federation, List<String> regions, int basePort, Path home, Path stateDir, String javaCommand,
            Map<String, Map<String, String>> extraEnvironment) {
        this(federation, regions, basePort, home, stateDir, javaCommand, extraEnvironment, java.util.Set.of());
    }

    /**
     * The same layout without the shop deployments named {@code region/deployment} (for example
     * {@code us-east/product-catalog}): neither the app nor its sidecar runs there, so callers in that
     * region reach the service in other regions.
     */
    public Topology without(java.util.Collection<String> deployments) {
        var all = new java.util.TreeSet<>(absent);
        for (String d : deployments) {
            int slash = d.indexOf('/');
            if (slash < 0 || !regions.contains(d.substring(0, slash)) || !SHOP_DEPLOYMENTS.contains(d.substring(slash + 1))) {
                throw new IllegalArgumentException("'" + d + "' is not region/deployment with a region of " + regions + " and a deployment of "
                        + SHOP_DEPLOYMENTS);
            }
            all.add(d);
        }
        return new Topology(federation, regions, basePort, home, stateDir, javaCommand, extraEnvironment, all);
    }

    /** Whether {@code deployment} runs in {@code region}. */
    public boolean runs(String region, String deployment) {
        return !absent.contains(region + "/" + deployment);
    }

    /**
     * The same layout with {@code env} added to the environment of every component named
     * {@code component} (for example {@code trust-bridge}), over the defaults.
     */
    public Topology withEnvironment(String component, Map<String, String> env) {
        var all = new LinkedHashMap<>(extraEnvironment);
        var merged = new LinkedHashMap<>(all.getOrDefault(component, Map.of()));
        merged.putAll(env);
        all.put(component, Map.copyOf(merged));
        return new Topology(federation, regions, basePort, home, stateDir, javaCommand, all, absent);
    }

    /** The demo shop's services, in start order. */
    public static final List<String> SHOP_SERVICES = List.of("user-login", "product-catalog", "order-processing");
    /**
     * What runs of the shop in every region: each service at version v1, and product-catalog also at
     * v2 ({@code product-catalog-v2}), the canary the example policy sends 10% of the catalogue's traffic to.
     */
    public static final List<String> SHOP_DEPLOYMENTS = List.of("user-login", "product-catalog", "order-processing", "product-catalog-v2");

    /** The service a deployment runs ({@code product-catalog-v2} runs product-catalog). */
    public static String serviceOf(String deployment) {
        return deployment.endsWith("-v2") ? deployment.substring(0, deployment.length() - 3) : deployment;
    }

    /** The version label of a deployment's endpoints. */
    public static String versionOf(String deployment) {
        return deployment.endsWith("-v2") ? "v2" : "v1";
    }
    public static final String SHOP_NAMESPACE = "shop";
    public static final String HOST = "127.0.0.1";

    static final int NATS_CLIENT = 0;
    static final int NATS_GATEWAY = 1;
    static final int NATS_MONITOR = 2;
    static final int NATS_CLUSTER = 3;
    static final int CONTROLLER_HTTP = 10;
    static final int CONTROLLER_XDS = 11;
    static final int BRIDGE_HTTP = 20;
    static final int BRIDGE_GRPC = 21;
    static final int GATEWAY_LISTEN = 30;
    static final int GATEWAY_ADMIN = 31;
    static final int SERVICE_BLOCK = 40;

    public Topology {
        regions = List.copyOf(regions);
        extraEnvironment = Map.copyOf(extraEnvironment);
        absent = absent == null ? java.util.Set.of() : java.util.Set.copyOf(absent);
        if (regions.isEmpty()) {
            throw new IllegalArgumentException("at least one region is needed");
        }
        for (String r : regions) {
            ClusterName.of(r);
        }
        if (regions.stream().distinct().count() != regions.size()) {
            throw new IllegalArgumentException("regions must be distinct: " + regions);
        }
        if (basePort < 1024 || basePort + 100 * regions.size() > 65535) {
            throw new IllegalArgumentException("base port " + basePort + " leaves no room for " + regions.size()
                    + " regions of 100 ports each below 65536");
        }
    }

    public int port(String region, int offset) {
        return basePort + 100 * regions.indexOf(region) + offset;
    }

    public int natsClientPort(String region) {
        return port(region, NATS_CLIENT);
    }

    public int natsMonitorPort(String region) {
        return port(region, NATS_MONITOR);
    }

    public int controllerPort(String region) {
        return port(region, CONTROLLER_HTTP);
    }

    public int trustBridgePort(String region) {
        return port(region, BRIDGE_HTTP);
    }

    public int gatewayAdminPort(String region) {
        return port(region, GATEWAY_ADMIN);
    }

    public int gatewayPort(String region) {
        return port(region, GATEWAY_LISTEN);
    }

    public int appPort(String region, String service) {
        int index = SHOP_DEPLOYMENTS.indexOf(service);
        if (index < 0) {
            throw new IllegalArgumentException("no shop deployment named '" + service + "'; known: " + SHOP_DEPLOYMENTS);
        }
        return port(region, SERVICE_BLOCK + 10 * index);
    }

    public int sidecarAdminPort(String region, String service) {
        return appPort(region, service) + 1;
    }

    public int sidecarInboundPort(String region, String service) {
        return appPort(region, service) + 2;
    }

    public int sidecarOutboundPort(String region, String service) {
        return appPort(region, service) + 3;
    }

    public Path regionDir(String region) {
        return stateDir.resolve(region);
    }

    /** The controller's admin credential (the controller writes it on first start). */
    public Path adminTokenFile(String region) {
        return regionDir(region).resolve("credentials").resolve("admin-token");
    }

    /** The region's static registry file (endpoints without a sidecar); absent until someone writes it. */
    public Path staticRegistryFile(String region) {
        return regionDir(region).resolve("registry").resolve("endpoints.yaml");
    }

    /** The trust bridge's gRPC port (workload certificates). */
    public int trustBridgeGrpcPort(String region) {
        return port(region, BRIDGE_GRPC);
    }

    /**
     * The region's workload join secret: sidecars register workloads with it at the controller and
     * present it to the trust bridge for their certificates.
     */
    public Path workloadTokenFile(String region) {
        return regionDir(region).resolve("credentials").resolve("workload-token");
    }

    /**
     * Istio's SNI for a shop service, {@code outbound_.80_._.<name>.shop.svc.cluster.local}: the service
     * port (80, the same in every region), not the sidecar's port (see MeshNames).
     */
    public String gatewaySni(String service) {
        return dev.isthmus.api.names.MeshNames.gatewaySni(dev.isthmus.api.names.MeshNames.DEFAULT_SERVICE_PORT, "",
                new dev.isthmus.api.names.ServiceName(SHOP_NAMESPACE, service));
    }

    /** The controller's xDS server (the region's sidecars and gateway are its clients). */
    public int controllerXdsPort(String region) {
        return port(region, CONTROLLER_XDS);
    }

    private List<Integer> sidecarPorts(String region, String service) {
        var ports = new java.util.ArrayList<>(List.of(sidecarAdminPort(region, service), sidecarInboundPort(region, service),
                sidecarOutboundPort(region, service)));
        if (servesGrpc(service)) {
            ports.add(sidecarGrpcInboundPort(region, service));
        }
        return ports;
    }

    /** product-catalog's gRPC service port (the shop's ShopGrpc.CATALOG_SERVICE_PORT). */
    public static final int CATALOG_GRPC_SERVICE_PORT = 9090;

    /** Whether a deployment also serves a gRPC API: product-catalog (both versions), on {@link #CATALOG_GRPC_SERVICE_PORT}. */
    public static boolean servesGrpc(String deployment) {
        return serviceOf(deployment).equals("product-catalog");
    }

    /** The app's gRPC port (deployments that {@link #servesGrpc serve gRPC}). */
    public int appGrpcPort(String region, String service) {
        return appPort(region, service) + 4;
    }

    /** The sidecar's inbound listener for the gRPC service port: an endpoint of its own. */
    public int sidecarGrpcInboundPort(String region, String service) {
        return appPort(region, service) + 5;
    }

    /** The federation's policy repository (bare; {@code up} seeds it from deploy/gitops-example); every controller watches it. */
    public Path policyRepo() {
        return stateDir.resolve("policy.git");
    }

    /** The shared secret of the controllers' policy push webhook. */
    public Path policyWebhookSecretFile() {
        return stateDir.resolve("credentials").resolve("policy-webhook-secret");
    }

    public Path natsConfig(String region) {
        return regionDir(region).resolve("nats").resolve("nats.conf");
    }

    /** Where {@code isthmus up} writes {@link #prometheusConfigText}. */
    public Path prometheusConfig() {
        return stateDir.resolve("prometheus.yml");
    }

    /**
     * A Prometheus configuration that scrapes every component of the federation that exports
     * Prometheus metrics: controllers and trust bridges ({@code /q/metrics}), east-west gateways and
     * sidecars (their admin port's {@code /metrics}). Each target carries {@code region} and, for
     * sidecars, {@code deployment}; the dashboards of {@code deploy/grafana} select by them. NATS
     * servers are left out: their monitoring port speaks JSON, not Prometheus text.
     */
    public String prometheusConfigText() {
        var out = new StringBuilder("""
                # Written by `isthmus up` for this local federation (%s, regions %s).
                # Run: prometheus --config.file=%s --storage.tsdb.path=%s
                global:
                  scrape_interval: 5s
                  evaluation_interval: 5s
                scrape_configs:
                """.formatted(federation, String.join(",", regions), prometheusConfig(), stateDir.resolve("prometheus-data")));
        job(out, "federation-controller", "/q/metrics", regions.stream().map(r -> target(controllerPort(r), r, null)).toList());
        job(out, "trust-bridge", "/q/metrics", regions.stream().map(r -> target(trustBridgePort(r), r, null)).toList());
        job(out, "east-west-gateway", "/metrics", regions.stream().map(r -> target(gatewayAdminPort(r), r, null)).toList());
        var sidecars = new ArrayList<String>();
        for (String r : regions) {
            for (String d : SHOP_DEPLOYMENTS) {
                if (runs(r, d)) {
                    sidecars.add(target(sidecarAdminPort(r, d), r, d));
                }
            }
        }
        job(out, "sidecar", "/metrics", sidecars);
        return out.toString();
    }

    private static String target(int port, String region, String deployment) {
        return "      - targets: ['" + HOST + ":" + port + "']\n        labels: {region: " + region
                + (deployment == null ? "" : ", deployment: " + deployment) + "}\n";
    }

    private static void job(StringBuilder out, String name, String path, List<String> targets) {
        out.append("  - job_name: ").append(name).append("\n    metrics_path: ").append(path).append("\n    static_configs:\n");
        targets.forEach(out::append);
    }

    /** Every component, in start order (by stage). */
    public List<Component> components() {
        var all = new ArrayList<Component>();
        for (String region : regions) {
            all.add(nats(region));
            all.add(controller(region));
            all.add(trustBridge(region));
            for (String deployment : SHOP_DEPLOYMENTS) {
                if (!runs(region, deployment)) {
                    continue;
                }
                all.add(app(region, deployment));
                all.add(sidecar(region, deployment));
            }
            all.add(gateway(region));
        }
        all.replaceAll(c -> {
            var extra = extraEnvironment.get(c.name());
            if (extra == null) {
                return c;
            }
            var env = new LinkedHashMap<>(c.environment());
            env.putAll(extra);
            return new Component(c.region(), c.name(), c.kind(), c.command(), env, c.workDir(), c.readiness(), c.url(), c.ports(), c.stage());
        });
        all.sort(java.util.Comparator.comparingInt(Component::stage));
        return all;
    }

    private Component nats(String region) {
        Path dir = regionDir(region).resolve("nats");
        return new Component(region, "nats-server", Component.Kind.NATS,
                List.of("nats-server", "-c", natsConfig(region).toString()), Map.of(), dir,
                URI.create("http://" + HOST + ":" + natsMonitorPort(region) + "/healthz"),
                "nats://" + HOST + ":" + natsClientPort(region),
                List.of(port(region, NATS_CLIENT), port(region, NATS_GATEWAY), port(region, NATS_MONITOR), port(region, NATS_CLUSTER)), 0);
    }

    private Component controller(String region) {
        Path dir = regionDir(region).resolve("federation-controller");
        var env = new LinkedHashMap<String, String>();
        env.put("QUARKUS_HTTP_PORT", Integer.toString(controllerPort(region)));
        env.put("QUARKUS_HTTP_HOST", HOST);
        env.put("ISTHMUS_FEDERATION", federation);
        env.put("ISTHMUS_CLUSTER_NAME", region);
        env.put("ISTHMUS_CLUSTER_REGION", region);
        env.put("ISTHMUS_NATS_URL", "nats://" + HOST + ":" + natsClientPort(region));
        env.put("ISTHMUS_STATE_DIR", dir.resolve("state").toString());
        env.put("ISTHMUS_REGISTRY_TTL", "5s");
        env.put("ISTHMUS_ADMIN_TOKEN_FILE", adminTokenFile(region).toString());
        env.put("ISTHMUS_WORKLOAD_TOKEN_FILE", workloadTokenFile(region).toString());
        env.put("ISTHMUS_REGISTRY_STATIC_FILE", staticRegistryFile(region).toString());
        env.put("ISTHMUS_TRUST_BRIDGE_URL", "http://" + HOST + ":" + trustBridgePort(region));
        env.put("ISTHMUS_REGISTRY_STATIC_FILE_POLL", "1s");
        env.put("ISTHMUS_XDS_LISTEN", HOST + ":" + controllerXdsPort(region));
        env.put("ISTHMUS_GATEWAY_ADDRESS", HOST + ":" + gatewayPort(region));
        env.put("ISTHMUS_POLICY_GIT_URL", policyRepo().toString());
        env.put("ISTHMUS_POLICY_GIT_POLL_INTERVAL", "5s");
        env.put("ISTHMUS_POLICY_WEBHOOK_SECRET_FILE", policyWebhookSecretFile().toString());
        return new Component(region, "federation-controller", Component.Kind.CONTROLLER,
                java(region, "federation-controller", "256m", home.resolve("federation-controller/target/quarkus-app/quarkus-run.jar")),
                env, dir, URI.create("http://" + HOST + ":" + controllerPort(region) + "/q/health/ready"),
                "http://" + HOST + ":" + controllerPort(region),
                List.of(controllerPort(region), controllerXdsPort(region)), 1);
    }

    private Component trustBridge(String region) {
        Path dir = regionDir(region).resolve("trust-bridge");
        var env = new LinkedHashMap<String, String>();
        env.put("QUARKUS_HTTP_PORT", Integer.toString(trustBridgePort(region)));
        env.put("QUARKUS_HTTP_HOST", HOST);
        env.put("ISTHMUS_FEDERATION", federation);
        env.put("ISTHMUS_CLUSTER_NAME", region);
        env.put("ISTHMUS_CA_DIR", dir.resolve("ca").toString());
        env.put("QUARKUS_GRPC_SERVER_PORT", Integer.toString(port(region, BRIDGE_GRPC)));
        env.put("QUARKUS_GRPC_SERVER_HOST", HOST);
        env.put("ISTHMUS_BOOTSTRAP_TOKEN_FILE", workloadTokenFile(region).toString());
        env.put("ISTHMUS_ADMIN_TOKEN_FILE", adminTokenFile(region).toString());
        env.put("ISTHMUS_CONTROLLER_URL", "http://" + HOST + ":" + controllerPort(region));
        return new Component(region, "trust-bridge", Component.Kind.TRUST_BRIDGE,
                java(region, "trust-bridge", "256m", home.resolve("trust-bridge/target/quarkus-app/quarkus-run.jar")),
                env, dir, URI.create("http://" + HOST + ":" + trustBridgePort(region) + "/q/health/ready"),
                "http://" + HOST + ":" + trustBridgePort(region),
                List.of(trustBridgePort(region), port(region, BRIDGE_GRPC)), 1);
    }

    private Component app(String region, String service) {
        Path dir = regionDir(region).resolve(service);
        var env = new LinkedHashMap<String, String>();
        env.put("SHOP_PORT", Integer.toString(appPort(region, service)));
        env.put("SHOP_HOST", HOST);
        env.put("SHOP_CLUSTER", region);
        env.put("SHOP_REGION", region);
        env.put("SHOP_INSTANCE", service + "-" + region + "-1");
        // Calls to other services go through its sidecar's outbound listener (an HTTP proxy routing by
        // service name, configured by the controller over xDS: local endpoints first, then other regions'
        // gateways, as policy says).
        env.put("SHOP_MESH_PROXY", HOST + ":" + sidecarOutboundPort(region, service));
        env.put("SHOP_NAMESPACE", SHOP_NAMESPACE);
        var ports = new java.util.ArrayList<>(List.of(appPort(region, service)));
        if (servesGrpc(service)) {
            env.put("SHOP_GRPC_PORT", Integer.toString(appGrpcPort(region, service)));
            ports.add(appGrpcPort(region, service));
        }
        return new Component(region, service, Component.Kind.APP,
                java(region, service, "64m", home.resolve("demo-shop/" + serviceOf(service) + "/target/" + serviceOf(service) + ".jar")),
                env, dir, URI.create("http://" + HOST + ":" + appPort(region, service) + "/healthz"),
                "http://" + HOST + ":" + appPort(region, service), ports, 2);
    }

    private Component sidecar(String region, String service) {
        String name = "sidecar-" + service;
        Path dir = regionDir(region).resolve(name);
        var env = new LinkedHashMap<String, String>();
        env.put("ISTHMUS_CLUSTER", region);
        env.put("ISTHMUS_SERVICE", SHOP_NAMESPACE + "/" + serviceOf(service));
        env.put("ISTHMUS_VERSION", versionOf(service));
        env.put("ISTHMUS_APP", HOST + ":" + appPort(region, service));
        env.put("ISTHMUS_INBOUND", HOST + ":" + sidecarInboundPort(region, service));
        env.put("ISTHMUS_ADMIN", HOST + ":" + sidecarAdminPort(region, service));
        env.put("ISTHMUS_IO_THREADS", "1");
        env.put("ISTHMUS_CONTROLLER", "http://" + HOST + ":" + controllerPort(region));
        env.put("ISTHMUS_INSTANCE", service + "-" + region + "-1");
        env.put("ISTHMUS_CONTROLLER_TOKEN_FILE", workloadTokenFile(region).toString());
        env.put("ISTHMUS_TRUST_BRIDGE", HOST + ":" + trustBridgeGrpcPort(region));
        env.put("ISTHMUS_TRUST_DOMAIN", region + "." + federation + ".isthmus");
        env.put("ISTHMUS_MTLS", "strict");
        // The inbound listener comes from the controller: mTLS, the caller's verified SPIFFE ID to the app, AuthorizationPolicy.
        env.put("ISTHMUS_INBOUND_PROTOCOL", "xds");
        env.put("ISTHMUS_XDS", HOST + ":" + controllerXdsPort(region));
        env.put("ISTHMUS_OUTBOUND", HOST + ":" + sidecarOutboundPort(region, service));
        env.put("ISTHMUS_STATE_DIR", dir.toString());
        if (servesGrpc(service)) {
            // the catalogue's gRPC API: service port 9090, its own inbound listener and endpoint
            env.put("ISTHMUS_PORTS", CATALOG_GRPC_SERVICE_PORT + "/grpc app=" + HOST + ":" + appGrpcPort(region, service) + " inbound=" + HOST + ":"
                    + sidecarGrpcInboundPort(region, service));
        }
        return new Component(region, name, Component.Kind.SIDECAR,
                java(region, name, "64m", home.resolve("sidecar-lite/target/sidecar-lite.jar")),
                env, dir, URI.create("http://" + HOST + ":" + sidecarAdminPort(region, service) + "/ready"),
                "http://" + HOST + ":" + sidecarInboundPort(region, service),
                sidecarPorts(region, service), 3);
    }

    private Component gateway(String region) {
        Path dir = regionDir(region).resolve("east-west-gateway");
        var env = new LinkedHashMap<String, String>();
        env.put("ISTHMUS_CLUSTER", region);
        env.put("ISTHMUS_LISTEN", HOST + ":" + gatewayPort(region));
        env.put("ISTHMUS_ADMIN", HOST + ":" + port(region, GATEWAY_ADMIN));
        env.put("ISTHMUS_IO_THREADS", "1");
        // The exported services and their endpoints come from the region's controller over xDS.
        env.put("ISTHMUS_XDS", HOST + ":" + controllerXdsPort(region));
        env.put("ISTHMUS_INSTANCE", "east-west-gateway-" + region);
        env.put("ISTHMUS_STATE_DIR", dir.toString());
        return new Component(region, "east-west-gateway", Component.Kind.GATEWAY,
                java(region, "east-west-gateway", "96m", home.resolve("east-west-gateway/target/east-west-gateway.jar")),
                env, dir, URI.create("http://" + HOST + ":" + port(region, GATEWAY_ADMIN) + "/ready"),
                "tls://" + HOST + ":" + gatewayPort(region), List.of(gatewayPort(region), port(region, GATEWAY_ADMIN)), 3);
    }

    /**
     * A JVM command line; the {@code local-federation.*} properties mark the process as ours. Small
     * heaps, C1 only, and the native heap trimmed every second: without it, memory the JIT freed
     * after a burst of load stays resident (measured on a sidecar under wrk: 6 MB with C1 only,
     * 25 MB with C2). The experimental unlock is for JDK 21, where the trim option is still
     * experimental; from JDK 22 it is a product option.
     *
     * <p>The heap starts at 16 MiB ({@code -Xms16m}) and grows as a process needs. Without it the
     * JVM starts at {@code -Xmx} on any machine with more than 64 times that much memory, and the
     * young generation, a third of it, is all touched within minutes. {@code bench/run mesh-memory},
     * idle sidecars: 96.6-99.5 MiB with it, 111.1-113.8 without; controllers 177-179 against 240-241.
     */
    private List<String> java(String region, String name, String heap, Path jar) {
        return List.of(javaCommand, "-Xms16m", "-Xmx" + heap, "-Xss512k", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
                "-XX:+UnlockExperimentalVMOptions", "-XX:TrimNativeHeapInterval=1000",
                "-Dlocal-federation.component=" + region + "/" + name, "-Dlocal-federation.state=" + stateDir,
                "-jar", jar.toString());
    }

    /** The nats-server configuration of one region: JetStream on, gateway-linked to every other region. */
    public String natsConfigText(String region) {
        var sb = new StringBuilder();
        sb.append("# Written by isthmus up; regenerated on every start.\n");
        sb.append("server_name: ").append(region).append('\n');
        sb.append("host: ").append(HOST).append('\n');
        sb.append("port: ").append(natsClientPort(region)).append('\n');
        sb.append("http: \"").append(HOST).append(':').append(natsMonitorPort(region)).append("\"\n");
        sb.append("jetstream {\n  store_dir: \"").append(regionDir(region).resolve("nats").resolve("jetstream"))
                .append("\"\n  max_memory_store: 64MB\n  max_file_store: 256MB\n}\n");
        if (regions.size() == 1) {
            // One region: a standalone server (a cluster or gateway block would make JetStream wait for peers).
            return sb.toString();
        }
        // JetStream in a super-cluster runs clustered, which needs a cluster with a route; one server per
        // region routes to itself (nats-server detects and ignores the self-route).
        sb.append("cluster {\n  name: \"").append(region).append("\"\n  listen: \"").append(HOST).append(':')
                .append(port(region, NATS_CLUSTER)).append("\"\n  routes: [\"nats-route://").append(HOST).append(':')
                .append(port(region, NATS_CLUSTER)).append("\"]\n}\n");
        sb.append("gateway {\n  name: \"").append(region).append("\"\n  host: ").append(HOST)
                .append("\n  port: ").append(port(region, NATS_GATEWAY)).append("\n  gateways: [\n");
        for (String other : regions) {
            if (!other.equals(region)) {
                sb.append("    { name: \"").append(other).append("\", urls: [\"nats://").append(HOST).append(':')
                        .append(port(other, NATS_GATEWAY)).append("\"] }\n");
            }
        }
        sb.append("  ]\n}\n");
        return sb.toString();
    }
}
