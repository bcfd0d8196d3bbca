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
        Map<String, Map<String, String>> extraEnvironment) {

    public Topology(String federation, List<String> regions, int basePort, Path home, Path stateDir, String javaCommand) {
        this(federation, regions, basePort, home, stateDir, javaCommand, Map.of());
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
        return new Topology(federation, regions, basePort, home, stateDir, javaCommand, all);
    }

    /** The demo shop's services, in start order. */
    public static final List<String> SHOP_SERVICES = List.of("user-login", "product-catalog", "order-processing");
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
        return port(region, SERVICE_BLOCK + 10 * SHOP_SERVICES.indexOf(service));
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
     * order-processing's sidecar listener for product-catalog in {@code remote}: a TCP proxy over
     * mTLS to that region's east-west gateway (Istio's SNI names the service), checking the remote
     * catalogue's SPIFFE ID end to end; the gateway only passes the TLS bytes on.
     */
    public int crossRegionCatalogPort(String region, String remote) {
        return appPort(region, "order-processing") + 4 + regions.indexOf(remote);
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
        var ports = new ArrayList<>(List.of(sidecarAdminPort(region, service), sidecarInboundPort(region, service), sidecarOutboundPort(region, service)));
        if (service.equals("order-processing")) {
            regions.stream().filter(r -> !r.equals(region)).forEach(r -> ports.add(crossRegionCatalogPort(region, r)));
        }
        return ports;
    }

    /** Where a sidecar's static bootstrap (Envoy v3 YAML) is written, when it has one. */
    public Path sidecarBootstrapFile(String region, String service) {
        return regionDir(region).resolve("sidecar-" + service).resolve("bootstrap.yaml");
    }

    /**
     * A sidecar's static bootstrap: order-processing gets an upstream listener for product-catalog
     * (a TCP proxy to the local catalogue's sidecar, mTLS expecting its SPIFFE ID); the others have
     * none. Until the controller's xDS server exists, this is how the sidecars get listeners.
     */
    public java.util.Optional<String> sidecarBootstrap(String region, String service) {
        if (!service.equals("order-processing")) {
            return java.util.Optional.empty();
        }
        String id = "spiffe://" + region + "." + federation + ".isthmus/ns/" + SHOP_NAMESPACE + "/sa/product-catalog";
        var remoteListeners = new StringBuilder();
        var remoteClusters = new StringBuilder();
        for (String remote : regions) {
            if (remote.equals(region)) {
                continue;
            }
            remoteListeners.append("""
                      - name: upstream-product-catalog-%1$s
                        address: { socket_address: { address: %2$s, port_value: %3$d } }
                        filter_chains:
                        - filters:
                          - name: envoy.filters.network.tcp_proxy
                            typed_config:
                              "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
                              stat_prefix: product-catalog-%1$s
                              cluster: product-catalog-%1$s
                    """.formatted(remote, HOST, crossRegionCatalogPort(region, remote)));
            remoteClusters.append("""
                      - name: product-catalog-%1$s
                        type: STATIC
                        connect_timeout: 1s
                        transport_socket:
                          name: envoy.transport_sockets.tls
                          typed_config:
                            "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
                            sni: "%2$s"
                            common_tls_context:
                              validation_context:
                                match_typed_subject_alt_names: [ { san_type: URI, matcher: { exact: "spiffe://%1$s.%3$s.isthmus/ns/%4$s/sa/product-catalog" } } ]
                        load_assignment:
                          cluster_name: product-catalog-%1$s
                          endpoints:
                          - locality: { region: %1$s }
                            lb_endpoints:
                            - endpoint: { address: { socket_address: { address: %5$s, port_value: %6$d } } }
                    """.formatted(remote, gatewaySni("product-catalog"), federation, SHOP_NAMESPACE, HOST, gatewayPort(remote)));
        }
        return java.util.Optional.of("""
                # Written by isthmus up: order-processing's sidecar in %1$s (Envoy v3 bootstrap; see docs/xds.md).
                static_resources:
                  listeners:
                  - name: upstream-product-catalog
                    address: { socket_address: { address: %2$s, port_value: %3$d } }
                    filter_chains:
                    - filters:
                      - name: envoy.filters.network.tcp_proxy
                        typed_config:
                          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
                          stat_prefix: product-catalog
                          cluster: product-catalog
                  clusters:
                  - name: product-catalog
                    type: STATIC
                    connect_timeout: 1s
                    lb_policy: ROUND_ROBIN
                    transport_socket:
                      name: envoy.transport_sockets.tls
                      typed_config:
                        "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
                        common_tls_context:
                          combined_validation_context:
                            default_validation_context:
                              match_typed_subject_alt_names:
                              - san_type: URI
                                matcher: { exact: "%4$s" }
                    load_assignment:
                      cluster_name: product-catalog
                      endpoints:
                      - locality: { region: %1$s }
                        priority: 0
                        lb_endpoints:
                        - endpoint: { address: { socket_address: { address: %2$s, port_value: %5$d } } }
                """.formatted(region, HOST, sidecarOutboundPort(region, service), id, sidecarInboundPort(region, "product-catalog"))
                .replace("  clusters:\n", remoteListeners + "  clusters:\n") + remoteClusters);
    }

    public Path natsConfig(String region) {
        return regionDir(region).resolve("nats").resolve("nats.conf");
    }

    /** Every component, in start order (by stage). */
    public List<Component> components() {
        var all = new ArrayList<Component>();
        for (String region : regions) {
            all.add(nats(region));
            all.add(controller(region));
            all.add(trustBridge(region));
            for (String service : SHOP_SERVICES) {
                all.add(app(region, service));
                all.add(sidecar(region, service));
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
        if (service.equals("order-processing")) {
            // Through its own sidecar's upstream listener, which carries the call over mTLS to the
            // local catalogue's sidecar (cross-region routing arrives with xDS and the gateways).
            env.put("SHOP_UPSTREAM_PRODUCT_CATALOG", "http://" + HOST + ":" + sidecarOutboundPort(region, "order-processing"));
        }
        return new Component(region, service, Component.Kind.APP,
                java(region, service, "64m", home.resolve("demo-shop/" + service + "/target/" + service + ".jar")),
                env, dir, URI.create("http://" + HOST + ":" + appPort(region, service) + "/healthz"),
                "http://" + HOST + ":" + appPort(region, service), List.of(appPort(region, service)), 2);
    }

    private Component sidecar(String region, String service) {
        String name = "sidecar-" + service;
        Path dir = regionDir(region).resolve(name);
        var env = new LinkedHashMap<String, String>();
        env.put("ISTHMUS_CLUSTER", region);
        env.put("ISTHMUS_SERVICE", SHOP_NAMESPACE + "/" + service);
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
        env.put("ISTHMUS_INBOUND_PROTOCOL", "http"); // the app sees its caller's verified SPIFFE ID
        if (sidecarBootstrap(region, service).isPresent()) {
            env.put("ISTHMUS_BOOTSTRAP", sidecarBootstrapFile(region, service).toString());
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

    /** A JVM command line; the {@code local-federation.*} properties mark the process as ours. */
    private List<String> java(String region, String name, String heap, Path jar) {
        return List.of(javaCommand, "-Xmx" + heap, "-Xss512k", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
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
