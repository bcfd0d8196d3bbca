package dev.isthmus.sidecar;

import dev.isthmus.api.names.Ports;
import dev.isthmus.proxy.ProxyProcess;
import dev.isthmus.proxy.config.Settings;
import dev.isthmus.proxy.config.xds.ProxyConfig;
import dev.isthmus.proxy.config.xds.XdsTranslator;
import dev.isthmus.proxy.identity.SpiffeSslContexts;
import dev.isthmus.proxy.config.xds.AdsClient;
import dev.isthmus.proxy.http.HttpProxy;
import dev.isthmus.proxy.tcp.UpstreamSelector;
import dev.isthmus.proxy.tcp.RelayManager;
import dev.isthmus.proxy.identity.SvidClient;
import dev.isthmus.proxy.tcp.TcpRelay;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * sidecar-lite: the proxy beside one workload instance.
 *
 * <p>Settings ({@code --name=value} or {@code ISTHMUS_NAME}): {@code cluster}, {@code service}
 * (namespace/name), {@code app} (host:port of the workload, required), {@code inbound}
 * (default 127.0.0.1:15006), {@code admin} (default 127.0.0.1:15000), {@code controller} (URL of the
 * cluster's controller; when set, the workload is registered there and kept alive by heartbeats),
 * {@code controller-token-file} (the cluster's workload join secret: sent to the controller as a bearer
 * token, and to the trust bridge as the bootstrap credential), {@code trust-bridge} (host:port of the
 * bridge's gRPC port; when set, the sidecar keeps a workload certificate for {@code spiffe-id},
 * default {@code spiffe://<trust-domain>/ns/<namespace>/sa/<name>}, and shows it in /config_dump),
 * {@code instance}, {@code protocol} (http), {@code version} (v1), {@code mtls} ({@code strict}, the
 * default with a trust bridge: the inbound listener accepts only mTLS from workloads the federated
 * bundle vouches for, and upstream listeners dial mTLS and check the callee's SPIFFE ID; {@code off}:
 * plain TCP), {@code upstreams} (explicit upstream listeners, see {@link Upstream}), {@code bootstrap}
 * (an Envoy v3 bootstrap file whose static listeners and clusters it runs; see docs/xds.md),
 * {@code outbound} (host:port: asks the controller's xDS server for the outbound HTTP listener there),
 * {@code inbound-protocol=xds} (the inbound listener comes from the controller: mTLS, HTTP to the app,
 * the service's AuthorizationPolicies), {@code service-port} (the service port of {@code app}, default
 * 80), {@code ports} (the service's further ports, each with its own app and inbound address, see
 * {@link ServicePort}; needs {@code inbound-protocol=xds}),
 * {@code xds} (host:port of an ADS server: its Listeners, Clusters and ClusterLoadAssignments replace
 * the bootstrap's; the last accepted set is kept in {@code <state-dir>/xds-last-good.pb} and run
 * at start), {@code state-dir} (default the working directory).
 *
 * <p>Ready when its listeners are bound, the app accepts connections and, with mTLS, it holds its
 * workload certificate.
 */
public final class SidecarMain {

    private static final Logger log = LoggerFactory.getLogger(SidecarMain.class);

    /** The certificate part of /config_dump: what the sidecar holds, or why it holds none. */
    static String svidDump(SvidClient client) {
        return client.current().map(c -> ",\"svid\":{\"spiffe_id\":\"" + c.spiffeId() + "\",\"serial\":\""
                + c.certificate().getSerialNumber().toString(16) + "\",\"not_after\":\"" + c.notAfter() + "\",\"trust_roots\":"
                + c.trustRoots().size() + ",\"trust_domains\":" + jsonList(List.copyOf(new java.util.TreeSet<>(c.bundle().keySet()))) + "}").orElse(",\"svid\":{\"error\":\"" + client.lastError().replace("\\", "\\\\").replace("\"", "'") + "\"}");
    }

    /** The listeners the xDS resources (bootstrap or ADS) run, for /config_dump. */
    static String xdsListeners(RelayManager manager) {
        var out = new StringBuilder();
        var config = manager.config();
        for (var l : config.listeners()) {
            out.append(",{\"name\":\"").append(l.name()).append("\",\"address\":\"").append(manager.address(l.name()).map(Object::toString).orElse(""))
                    .append("\",\"mtls_in\":").append(l.mtls()).append(",\"source\":\"").append(config.version().replace("\"", "'")).append('"');
            if (l.http().isPresent()) {
                var clusters = new java.util.TreeSet<String>();
                l.http().get().virtualHosts().forEach(vh -> vh.routes().forEach(r -> r.clusters().forEach(w -> clusters.add(w.cluster()))));
                out.append(",\"protocol\":\"http\",\"virtual_hosts\":").append(l.http().get().virtualHosts().size())
                        .append(",\"rbac\":").append(l.http().get().rbac().isPresent()).append(",\"clusters\":").append(jsonList(List.copyOf(clusters)));
            } else {
                var cluster = config.clusters().get(l.cluster());
                out.append(",\"protocol\":\"tcp\",\"cluster\":\"").append(cluster.name()).append("\",\"lb_policy\":\"").append(cluster.lbPolicy())
                        .append("\",\"mtls\":").append(cluster.mtls()).append(",\"expected_identities\":").append(jsonList(cluster.expectedSpiffeIds()))
                        .append(",\"endpoints\":").append(cluster.endpoints().size());
            }
            out.append('}');
        }
        return out.toString();
    }

    static String jsonList(List<String> values) {
        return values.stream().map(v -> "\"" + v.replace("\\", "\\\\").replace("\"", "\\\"") + "\"")
                .collect(java.util.stream.Collectors.joining(",", "[", "]"));
    }

    /** Reads the credential file on every call; empty if it is not there (yet). */
    static java.util.function.Supplier<String> credentialFile(java.util.Optional<String> file) {
        return () -> {
            if (file.isEmpty()) {
                return "";
            }
            try {
                return java.nio.file.Files.readString(java.nio.file.Path.of(file.get())).strip();
            } catch (java.io.IOException e) {
                return "";
            }
        };
    }

    /** Whether {@code app} accepts a connection; a change is logged. */
    private static void probe(InetSocketAddress app, AtomicBoolean appUp) {
        boolean up;
        try (var s = new Socket()) {
            s.connect(app, 500);
            up = true;
        } catch (Exception e) {
            up = false;
        }
        if (appUp.getAndSet(up) != up) {
            log.info("event=app_health app={} up={}", app, up);
        }
    }

    /**
     * Netty's pooled buffers come in chunks of 1 MiB rather than its default 4 MiB (order 9): a sidecar
     * holds one chunk or two per event loop and never pools a buffer that large, and it was 2 MiB less
     * when ready and 5 MiB less after load, at the same throughput (alternating wrk runs,
     * docs/benchmarks.md). A value given with {@code -Dio.netty.allocator.maxOrder} is kept.
     */
    static final int ALLOCATOR_MAX_ORDER = 7;

    /**
     * Netty's leak detector is off unless {@code -Dio.netty.leakDetection.level} says otherwise
     * ({@code simple} or {@code paranoid} to look for a leak). At its default level it records a
     * stack trace for one buffer in 128, and under h2load's 320 streams that was 3.6% of the
     * sidecar's CPU (async-profiler, docs/benchmarks.md). Netty's checks of a buffer's reference
     * count and bounds on each access stay on: without them a buffer used after release would
     * silently read or write another request's memory instead of failing.
     */
    static final String LEAK_DETECTION = "disabled";

    public static void main(String[] args) throws Exception {
        // before Netty's allocator and leak detector are loaded
        if (System.getProperty("io.netty.allocator.maxOrder") == null) {
            System.setProperty("io.netty.allocator.maxOrder", Integer.toString(ALLOCATOR_MAX_ORDER));
        }
        if (System.getProperty("io.netty.leakDetection.level") == null && System.getProperty("io.netty.leakDetectionLevel") == null) {
            System.setProperty("io.netty.leakDetection.level", LEAK_DETECTION);
        }
        Settings settings;
        InetSocketAddress app;
        try {
            settings = Settings.from("sidecar-lite", args, System.getenv());
            app = settings.requiredAddress("app");
        } catch (Settings.SettingsException e) {
            System.err.println(e.getMessage());
            System.exit(2);
            return;
        }
        var process = new ProxyProcess("sidecar-lite", settings);
        var svid = settings.optional("trust-bridge").map(bridge -> {
            String service = settings.string("service", "default/" + settings.string("instance", "workload"));
            String id = settings.string("spiffe-id", "spiffe://" + settings.string("trust-domain", settings.string("cluster", "local") + ".acme.isthmus")
                    + "/ns/" + service.substring(0, service.indexOf('/')) + "/sa/" + service.substring(service.indexOf('/') + 1));
            var client = process.own(new SvidClient(bridge, id, credentialFile(settings.optional("controller-token-file")), Duration.ZERO));
            client.start();
            return client;
        });
        String mtls = settings.string("mtls", svid.isPresent() ? "strict" : "off");
        List<Upstream> upstreams;
        try {
            if (!mtls.equals("strict") && !mtls.equals("off")) {
                throw new Settings.SettingsException("sidecar-lite: mtls=" + mtls + " is not known; use 'strict' or 'off'");
            }
            if (mtls.equals("strict") && svid.isEmpty()) {
                throw new Settings.SettingsException("sidecar-lite: mtls=strict needs trust-bridge (host:port) for the workload certificate");
            }
            upstreams = Upstream.parseAll(settings.string("upstreams", ""));
        } catch (Settings.SettingsException e) {
            System.err.println(e.getMessage());
            System.exit(2);
            return;
        }
        ProxyConfig bootstrap = null;
        if (settings.optional("bootstrap").isPresent()) {
            try {
                bootstrap = XdsTranslator.fromBootstrapFile(java.nio.file.Path.of(settings.required("bootstrap")));
            } catch (XdsTranslator.ConfigException e) {
                System.err.println("sidecar-lite: the bootstrap file " + settings.required("bootstrap") + " is refused:");
                e.errors().forEach(err -> System.err.println("  " + err));
                System.exit(2);
                return;
            } catch (java.io.IOException e) {
                System.err.println("sidecar-lite: the bootstrap file cannot be read: " + e);
                System.exit(2);
                return;
            }
        }
        java.util.function.Supplier<java.util.Optional<SvidClient.Svid>> identity = () -> svid.flatMap(SvidClient::current);
        boolean strict = mtls.equals("strict");
        // Inbound: mTLS from any workload the federated bundle vouches for (AuthorizationPolicy narrows it, with the policy issue).
        String inboundProtocol = settings.string("inbound-protocol", "tcp");
        InetSocketAddress inboundAddress = settings.address("inbound", "127.0.0.1:" + Ports.SIDECAR_INBOUND);
        int firstServicePort;
        List<ServicePort> morePorts;
        try {
            String sp = settings.string("service-port", Integer.toString(dev.isthmus.api.names.MeshNames.DEFAULT_SERVICE_PORT));
            try {
                firstServicePort = Integer.parseInt(sp);
            } catch (NumberFormatException e) {
                throw new Settings.SettingsException("sidecar-lite: service-port '" + sp + "' is not a number");
            }
            if (firstServicePort < 1 || firstServicePort > 65535) {
                throw new Settings.SettingsException("sidecar-lite: service-port " + firstServicePort + " is outside 1-65535");
            }
            morePorts = ServicePort.parseAll(settings.string("ports", ""), firstServicePort, java.util.Set.of(inboundAddress));
            if (!morePorts.isEmpty() && !inboundProtocol.equals("xds")) {
                throw new Settings.SettingsException("sidecar-lite: ports needs inbound-protocol=xds (their listeners come from the controller)");
            }
        } catch (Settings.SettingsException e) {
            System.err.println(e.getMessage());
            System.exit(2);
            return;
        }
        var serverTls = strict ? SpiffeSslContexts.server(identity, id -> true) : null;
        InetSocketAddress inboundBound;
        switch (inboundProtocol) {
            case "tcp" -> inboundBound = process.own(TcpRelay.start("inbound", process.loops(), inboundAddress, app, Duration.ofSeconds(2),
                    process.meters(), strict ? new TcpRelay.Tls(serverTls, null, null) : TcpRelay.Tls.NONE)).address();
            case "http" -> {
                // HTTP to the app (HTTP/2 cleartext when it speaks grpc or http2, else HTTP/1.1): the caller's verified
                // SPIFFE ID in x-isthmus-peer-identity, any such header from outside removed
                String appProtocol = settings.string("protocol", "http");
                var appCluster = new HttpProxy.Upstream("inbound|" + app.getPort(), UpstreamSelector.fixed(app), null, null, Duration.ofSeconds(2),
                        new dev.isthmus.proxy.lb.CircuitBreakers(ProxyConfig.Limits.DEFAULT), appProtocol.equals("grpc") || appProtocol.equals("http2"));
                var spec = new ProxyConfig.HttpSpec("inbound", List.of(new ProxyConfig.VirtualHost("inbound", List.of("*"), List.of(
                        new ProxyConfig.Route("/", null, List.of(new ProxyConfig.WeightedCluster(appCluster.name(), 1)), Duration.ZERO,
                                ProxyConfig.RetrySpec.NONE)))));
                inboundBound = process.own(HttpProxy.start("inbound", process.loops(), inboundAddress, spec, n -> appCluster, serverTls,
                        process.meters(), settings.string("cluster", ""))).address();
            }
            case "xds" -> {
                // The controller serves the inbound listener (mTLS, the service's AuthorizationPolicies as RBAC) over xDS.
                if (settings.optional("xds").isEmpty() || !strict) {
                    System.err.println("sidecar-lite: inbound-protocol=xds needs xds=HOST:PORT and mtls=strict");
                    System.exit(2);
                    return;
                }
                inboundBound = inboundAddress;
            }
            default -> {
                System.err.println("sidecar-lite: inbound-protocol=" + inboundProtocol + " is not known; use 'tcp', 'http' or 'xds'");
                System.exit(2);
                return;
            }
        }
        var upstreamDump = new StringBuilder();
        for (var u : upstreams) {
            var relay = process.own(TcpRelay.start("upstream-" + u.listen().getPort(), process.loops(), u.listen(), u.destination(),
                    Duration.ofSeconds(2), process.meters(),
                    strict ? new TcpRelay.Tls(null, SpiffeSslContexts.client(identity, u.spiffeId()::equals), null) : TcpRelay.Tls.NONE));
            upstreamDump.append(",{\"name\":\"upstream\",\"address\":\"").append(relay.address()).append("\",\"upstream\":\"")
                    .append(u.destination()).append("\",\"expected_identity\":\"").append(u.spiffeId()).append("\"}");
        }

        // Listeners from xDS resources: the static bootstrap first, then the controller's ADS stream (which replaces them).
        var manager = process.own(new RelayManager(process.loops(), process.meters(), svid.isPresent() ? identity : null,
                settings.string("cluster", "")));
        if (bootstrap != null) {
            try {
                manager.apply(bootstrap);
            } catch (Exception e) {
                System.err.println("sidecar-lite: the bootstrap file " + settings.required("bootstrap") + " cannot run: " + e.getMessage());
                System.exit(2);
                return;
            }
        }
        var ads = settings.optional("xds").map(target -> {
            String service = settings.string("service", "default/workload");
            var metadata = dev.isthmus.xds.google.protobuf.Struct.newBuilder().putFields("ISTHMUS_PROXY_TYPE",
                    dev.isthmus.xds.google.protobuf.Value.newBuilder().setStringValue("sidecar").build());
            // The controller adds the outbound HTTP listener (routes by Host to every service of the federation) where asked.
            settings.optional("outbound").ifPresent(o -> metadata.putFields("ISTHMUS_OUTBOUND_ADDRESS",
                    dev.isthmus.xds.google.protobuf.Value.newBuilder().setStringValue(o).build()));
            if (inboundProtocol.equals("xds")) {
                metadata.putFields("ISTHMUS_INBOUND_ADDRESS", dev.isthmus.xds.google.protobuf.Value.newBuilder()
                        .setStringValue(inboundAddress.getHostString() + ":" + inboundAddress.getPort()).build());
                metadata.putFields("ISTHMUS_APP_ADDRESS", dev.isthmus.xds.google.protobuf.Value.newBuilder().setStringValue(app.getHostString() + ":" + app.getPort()).build());
                metadata.putFields("ISTHMUS_APP_PROTOCOL", dev.isthmus.xds.google.protobuf.Value.newBuilder().setStringValue(settings.string("protocol", "http")).build());
                var list = dev.isthmus.xds.google.protobuf.ListValue.newBuilder();
                for (var port : morePorts) {
                    list.addValues(dev.isthmus.xds.google.protobuf.Value.newBuilder().setStructValue(dev.isthmus.xds.google.protobuf.Struct.newBuilder()
                            .putFields("service_port", dev.isthmus.xds.google.protobuf.Value.newBuilder().setNumberValue(port.servicePort()).build())
                            .putFields("protocol", dev.isthmus.xds.google.protobuf.Value.newBuilder().setStringValue(port.protocol()).build())
                            .putFields("inbound", dev.isthmus.xds.google.protobuf.Value.newBuilder()
                                    .setStringValue(port.inbound().getHostString() + ":" + port.inbound().getPort()).build())
                            .putFields("app", dev.isthmus.xds.google.protobuf.Value.newBuilder()
                                    .setStringValue(port.app().getHostString() + ":" + port.app().getPort()).build())));
                }
                if (!morePorts.isEmpty()) {
                    metadata.putFields("ISTHMUS_PORTS", dev.isthmus.xds.google.protobuf.Value.newBuilder().setListValue(list).build());
                }
            }
            var node = dev.isthmus.xds.envoy.config.core.v3.Node.newBuilder().setId(settings.string("instance", service.replace('/', '-')))
                    .setCluster(service).setLocality(dev.isthmus.xds.envoy.config.core.v3.Locality.newBuilder().setRegion(settings.string("cluster", "")))
                    .setMetadata(metadata).build();
            var client = process.own(new AdsClient(target, node, java.nio.file.Path.of(settings.string("state-dir", ".")).resolve("xds-last-good.pb"),
                    manager, process.meters()));
            client.start();
            return client;
        });

        var appUp = new AtomicBoolean(false);
        var portUp = new java.util.LinkedHashMap<ServicePort, AtomicBoolean>();
        morePorts.forEach(p -> portUp.put(p, new AtomicBoolean(false)));
        var probe = Executors.newSingleThreadScheduledExecutor(r -> Thread.ofPlatform().daemon().name("app-probe").unstarted(r));
        process.own(probe::shutdownNow);
        probe.scheduleWithFixedDelay(() -> {
            probe(app, appUp);
            portUp.forEach((p, up) -> probe(p.app(), up));
        }, 0, 1, TimeUnit.SECONDS);

        // tls_provider is asked for when the dump is: asking loads Netty's OpenSsl, BoringSSL and the
        // JDK's TLS provider (about 600 classes, 9 MiB), which a sidecar with mTLS off never needs.
        String head = "{\"service\":\"" + settings.string("service", "") + "\",\"cluster\":\"" + settings.string("cluster", "")
                + "\",\"mtls\":\"" + mtls + "\",\"tls_provider\":\"";
        String listeners = "\",\"listeners\":[{\"name\":\"inbound\",\"protocol\":\"" + inboundProtocol + "\",\"address\":\"" + inboundBound
                + "\",\"upstream\":\"" + app + "\"}"
                + upstreamDump;
        java.util.function.Supplier<String> dump = () -> head + SpiffeSslContexts.provider() + listeners + xdsListeners(manager) + "],\"endpoints\":" + manager.endpointsJson()
                + ads.map(c -> ",\"xds\":{\"applied\":\"" + c.appliedVersion().replace("\"", "'") + "\",\"last_error\":\""
                        + c.lastError().replace("\\", "/").replace("\"", "'") + "\"}").orElse("");
        // With inbound-protocol=xds the inbound listener exists once the controller's config runs.
        java.util.function.BooleanSupplier inboundRuns = () -> !inboundProtocol.equals("xds") || manager.address("inbound").isPresent();
        java.util.function.Predicate<ServicePort> portRuns = p -> portUp.get(p).get() && manager.address(p.listenerName()).isPresent();
        process.startAdmin(() -> appUp.get() && (!strict || identity.get().isPresent()) && inboundRuns.getAsBoolean()
                && morePorts.stream().allMatch(portRuns),
                () -> dump.get() + svid.map(SidecarMain::svidDump).orElse("") + "}");

        var controller = settings.optional("controller");
        if (controller.isPresent()) {
            String service = settings.required("service");
            String instance = settings.string("instance", service.replace('/', '-') + "-" + ProcessHandle.current().pid());
            var interval = Duration.ofMillis(Long.parseLong(settings.string("registration-interval-ms", "2000")));
            java.util.function.Supplier<String> spiffeId = () -> identity.get().map(SvidClient.Svid::spiffeId).orElse("");
            var labels = new java.util.HashMap<String, String>();
            labels.put(dev.isthmus.api.names.MeshNames.SUBSET_LABEL, settings.string("version", "v1"));
            if (firstServicePort != dev.isthmus.api.names.MeshNames.DEFAULT_SERVICE_PORT) {
                labels.put(dev.isthmus.api.names.MeshNames.SERVICE_PORT_LABEL, Integer.toString(firstServicePort));
            }
            process.own(new WorkloadRegistrar(java.net.URI.create(controller.get()), service, instance,
                    inboundBound.getHostString(), inboundBound.getPort(), settings.string("protocol", "http"), labels,
                    () -> appUp.get() && inboundRuns.getAsBoolean(), credentialFile(settings.optional("controller-token-file")), spiffeId))
                    .start(interval);
            // each further service port is an endpoint of its own (its own inbound listener), labelled with the port
            for (var port : morePorts) {
                var portLabels = new java.util.HashMap<>(labels);
                portLabels.put(dev.isthmus.api.names.MeshNames.SERVICE_PORT_LABEL, Integer.toString(port.servicePort()));
                process.own(new WorkloadRegistrar(java.net.URI.create(controller.get()), service, instance + ".port-" + port.servicePort(),
                        port.inbound().getHostString(), port.inbound().getPort(), port.protocol(), portLabels,
                        () -> portRuns.test(port), credentialFile(settings.optional("controller-token-file")), spiffeId)).start(interval);
            }
        }
        log.info("event=sidecar_started service={} cluster={} inbound={} app={}",
                settings.string("service", ""), settings.string("cluster", ""), inboundBound, app);
        process.awaitShutdown();
    }
}
