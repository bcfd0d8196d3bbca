package dev.isthmus.controller.xds;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.isthmus.api.registry.Endpoint;
import dev.isthmus.proxy.config.xds.ProxyConfig;
import dev.isthmus.proxy.config.xds.XdsTranslator;
import java.net.InetSocketAddress;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** The resources built from a federated registry, read back by the proxies' own translator (what they would run). */
class ProxyResourcesTest {

    private static Endpoint ep(String cluster, String instance, String address, int port, String version, boolean healthy, int weight) {
        return new Endpoint("shop/product-catalog", instance, cluster, address, port, "http", Map.of("version", version), cluster, "zone-a", healthy,
                weight, "spiffe://" + cluster + ".acme.isthmus/ns/shop/sa/product-catalog");
    }

    private static final Endpoint ORDERS = new Endpoint("shop/order-processing", "op-1", "us-east", "127.0.0.1", 7002, "grpc", Map.of(),
            "us-east", "zone-a", true, 1, "spiffe://us-east.acme.isthmus/ns/shop/sa/order-processing");

    private static ProxyResources.Inputs inputs() {
        return new ProxyResources.Inputs("us-east", "us-east", "zone-a",
                List.of(ep("us-east", "pc-1", "127.0.0.1", 7001, "v1", true, 1), ep("us-east", "pc-2", "127.0.0.2", 7001, "v2", false, 1), ORDERS),
                Map.of("eu-west", List.of(ep("eu-west", "pc-3", "10.0.0.1", 7001, "v1", true, 2), ep("eu-west", "pc-4", "10.0.0.2", 7001, "v1", true, 3)),
                        "ap-south", List.of(ep("ap-south", "pc-5", "10.1.0.1", 7001, "v2", true, 1)),
                        "us-west", List.of(ep("us-west", "pc-6", "10.2.0.1", 7001, "v1", true, 1))),
                Map.of("eu-west", new ProxyResources.Peer("eu-west", "eu-west", "zone-a", "127.0.0.9:15443"),
                        "ap-south", new ProxyResources.Peer("ap-south", "ap-south", "zone-a", "127.0.0.8:15443"),
                        "us-west", new ProxyResources.Peer("us-west", "us-west", "zone-a", "")));
    }

    private static ProxyConfig translate(ProxyResources.ClusterSet set, List<io.envoyproxy.envoy.config.listener.v3.Listener> listeners)
            throws XdsTranslator.ConfigException {
        // the proxies read the controller's resources as they come off the wire, into their own cut-down messages
        return XdsTranslator.translate("t", wire(listeners, dev.isthmus.xds.envoy.config.listener.v3.Listener.parser()),
                wire(set.clusters(), dev.isthmus.xds.envoy.config.cluster.v3.Cluster.parser()),
                wire(set.assignments(), dev.isthmus.xds.envoy.config.endpoint.v3.ClusterLoadAssignment.parser()));
    }

    private static <T> List<T> wire(List<? extends com.google.protobuf.MessageLite> resources, com.google.protobuf.Parser<T> parser) {
        return resources.stream().map(r -> {
            try {
                return parser.parseFrom(r.toByteString());
            } catch (com.google.protobuf.InvalidProtocolBufferException e) {
                throw new AssertionError(e);
            }
        }).toList();
    }

    @Test
    void sidecarClustersPutLocalEndpointsFirstThenRemoteGatewaysInFailoverOrder() throws Exception {
        var config = translate(ProxyResources.sidecarClusters(inputs()), List.of());
        var all = config.clusters().get("outbound|80||product-catalog.shop.svc.cluster.local");
        assertEquals(java.util.Optional.of("outbound_.80_._.product-catalog.shop.svc.cluster.local"), all.sni());
        assertTrue(all.mtls());
        assertEquals(List.of("spiffe://ap-south.acme.isthmus/ns/shop/sa/product-catalog", "spiffe://eu-west.acme.isthmus/ns/shop/sa/product-catalog",
                "spiffe://us-east.acme.isthmus/ns/shop/sa/product-catalog", "spiffe://us-west.acme.isthmus/ns/shop/sa/product-catalog"),
                all.expectedSpiffeIds());
        // priority 0: the healthy local endpoint only; then ap-south and eu-west (by name) at their gateways;
        // us-west announced no gateway and is left out.
        assertEquals(3, all.endpoints().size(), all.endpoints().toString());
        assertEquals(new InetSocketAddress("127.0.0.1", 7001), all.endpoints().get(0).address());
        assertEquals(0, all.endpoints().get(0).priority());
        assertEquals(new InetSocketAddress("127.0.0.8", 15443), all.endpoints().get(1).address());
        assertEquals(1, all.endpoints().get(1).priority());
        assertEquals(new InetSocketAddress("127.0.0.9", 15443), all.endpoints().get(2).address());
        assertEquals(2, all.endpoints().get(2).priority());
        assertEquals(5, all.endpoints().get(2).weight(), "the gateway endpoint weighs what eu-west's endpoints weigh together");

        var v2 = config.clusters().get("outbound|80|v2|product-catalog.shop.svc.cluster.local");
        assertEquals(java.util.Optional.of("outbound_.80_.v2_.product-catalog.shop.svc.cluster.local"), v2.sni());
        assertEquals(1, v2.endpoints().size(), "the local v2 endpoint is unhealthy; only ap-south's gateway has v2");
        assertEquals(new InetSocketAddress("127.0.0.8", 15443), v2.endpoints().get(0).address());
        assertTrue(config.clusters().get("outbound|80||order-processing.shop.svc.cluster.local").http2(), "gRPC services are reached over HTTP/2");
    }

    @Test
    void sameRegionClustersComeBeforeOthers() {
        var in = new ProxyResources.Inputs("us-east-1", "us-east", "zone-a", List.of(), Map.of(),
                Map.of("ap-south", new ProxyResources.Peer("ap-south", "ap-south", "", "h:1"),
                        "us-east-2", new ProxyResources.Peer("us-east-2", "us-east", "", "h:2")));
        assertEquals(List.of("us-east-2", "ap-south"), ProxyResources.failoverOrder(in, "shop/x").stream().map(ProxyResources.Peer::cluster).toList());
    }

    @Test
    void gatewayClustersAreNamedByTheirSniAndHoldOnlyLocalEndpoints() throws Exception {
        var config = translate(ProxyResources.gateway(inputs()), List.of());
        assertEquals(java.util.Set.of("outbound_.80_._.product-catalog.shop.svc.cluster.local", "outbound_.80_.v1_.product-catalog.shop.svc.cluster.local",
                "outbound_.80_.v2_.product-catalog.shop.svc.cluster.local", "outbound_.80_._.order-processing.shop.svc.cluster.local"),
                config.clusters().keySet());
        var all = config.clusters().get("outbound_.80_._.product-catalog.shop.svc.cluster.local");
        assertEquals(2, all.endpoints().size());
        assertFalse(all.mtls(), "the gateway never terminates TLS: its clusters carry no TLS context");
        assertFalse(all.endpoints().stream().filter(e -> e.address().getHostString().equals("127.0.0.2")).findFirst().orElseThrow().healthy());
    }

    @Test
    void theOutboundListenerRoutesEachServiceByHostName() throws Exception {
        var set = ProxyResources.sidecarClusters(inputs());
        var config = translate(set, List.of(ProxyResources.outboundListener("127.0.0.1", 15001, "shop", set, dev.isthmus.api.policy.Policies.Bundle.EMPTY)));
        var http = config.listeners().get(0).http().orElseThrow();
        var catalog = http.virtualHosts().stream().filter(v -> v.domains().contains("product-catalog")).findFirst().orElseThrow();
        assertTrue(catalog.domains().containsAll(List.of("product-catalog.shop.svc.cluster.local", "product-catalog.shop")));
        assertEquals("outbound|80||product-catalog.shop.svc.cluster.local", catalog.routes().get(0).clusters().get(0).cluster());
        assertEquals(2, catalog.routes().get(0).retry().numRetries());
        assertEquals(java.util.Set.of("connect-failure", "reset", "refused-stream", "unavailable"), catalog.routes().get(0).retry().retryOn(),
                "Istio's default retries, which the sidecar's translator accepts");
    }

    /** product-catalog's gRPC API on service port 9090, beside its HTTP port 80: its own endpoints (another sidecar port). */
    private static Endpoint grpcPort(String cluster, String instance, String address, int port) {
        return new Endpoint("shop/product-catalog", instance, cluster, address, port, "grpc",
                Map.of("version", "v1", dev.isthmus.api.names.MeshNames.SERVICE_PORT_LABEL, "9090"), cluster, "zone-a", true, 1,
                "spiffe://" + cluster + ".acme.isthmus/ns/shop/sa/product-catalog");
    }

    @Test
    void aSecondServicePortGetsItsOwnClustersGatewaySniAndVirtualHostWithThePort() throws Exception {
        var base = inputs();
        var local = new java.util.ArrayList<>(base.local());
        local.add(grpcPort("us-east", "pc-1.port-9090", "127.0.0.1", 7005));
        var remote = new java.util.HashMap<>(base.remote());
        var eu = new java.util.ArrayList<>(remote.get("eu-west"));
        eu.add(grpcPort("eu-west", "pc-3.port-9090", "10.0.0.1", 7005));
        remote.put("eu-west", eu);
        var in = new ProxyResources.Inputs(base.cluster(), base.region(), base.zone(), local, remote, base.peers());
        var set = ProxyResources.sidecarClusters(in);
        var config = translate(set, List.of(ProxyResources.outboundListener("127.0.0.1", 15001, "shop", set, dev.isthmus.api.policy.Policies.Bundle.EMPTY)));

        var grpc = config.clusters().get("outbound|9090||product-catalog.shop.svc.cluster.local");
        assertTrue(grpc.http2(), "the gRPC port's endpoints speak HTTP/2");
        assertFalse(config.clusters().get("outbound|80||product-catalog.shop.svc.cluster.local").http2(), "the HTTP port stays HTTP/1.1");
        assertEquals(java.util.Optional.of("outbound_.9090_._.product-catalog.shop.svc.cluster.local"), grpc.sni());
        assertEquals(List.of(new InetSocketAddress("127.0.0.1", 7005), new InetSocketAddress("127.0.0.9", 15443)),
                grpc.endpoints().stream().map(ProxyConfig.EndpointSpec::address).toList(), "its own local port, then eu-west's gateway");

        var hosts = config.listeners().get(0).http().orElseThrow().virtualHosts();
        var port80 = hosts.stream().filter(v -> v.domains().contains("product-catalog.shop")).findFirst().orElseThrow();
        var port9090 = hosts.stream().filter(v -> v.domains().contains("product-catalog.shop:9090")).findFirst().orElseThrow();
        assertTrue(port80.domains().contains("product-catalog.shop:80"));
        assertFalse(port9090.domains().contains("product-catalog.shop"), "a non-default port is named with its number only");
        assertTrue(port9090.domains().containsAll(List.of("product-catalog:9090", "product-catalog.shop.svc.cluster.local:9090")));
        assertEquals("outbound|9090||product-catalog.shop.svc.cluster.local", port9090.routes().get(0).clusters().get(0).cluster());

        var gateway = translate(ProxyResources.gateway(in), List.of());
        assertEquals(List.of(new InetSocketAddress("127.0.0.1", 7005)),
                gateway.clusters().get("outbound_.9090_._.product-catalog.shop.svc.cluster.local").endpoints().stream()
                        .map(ProxyConfig.EndpointSpec::address).toList(), "the gateway routes the port's SNI to that port's endpoints");
    }

    private static dev.isthmus.api.policy.Policies.Bundle policy(String yaml) {
        var r = dev.isthmus.api.policy.PolicyValidator.validate(Map.of("p.yaml", yaml), null);
        assertTrue(r.ok(), r.problems().toString());
        return r.bundle();
    }

    private static ProxyResources.Inputs withPolicy(ProxyResources.Inputs in, dev.isthmus.api.policy.Policies.Bundle b) {
        return new ProxyResources.Inputs(in.cluster(), in.region(), in.zone(), in.local(), in.remote(), in.peers(), b);
    }

    @Test
    void aTrafficPolicyBecomesWeightedRoutesTimeoutsRetriesBreakersAndOutlierDetection() throws Exception {
        var b = policy("""
                apiVersion: isthmus.dev/v1alpha1
                kind: TrafficPolicy
                metadata: { name: canary, namespace: shop }
                spec:
                  service: product-catalog
                  routes:
                  - name: beta
                    match: { headers: [ { name: x-beta } ], method: GET }
                    destinations: [ { subset: v2, cluster: ap-south, weight: 100 } ]
                  - name: default
                    destinations: [ { subset: v1, weight: 90 }, { subset: v3, weight: 10 } ]
                    timeout: 2s
                    retries: { attempts: 3, on: [connect-failure, 5xx], budgetPercent: 20 }
                  circuitBreaker: { maxConnections: 10, maxPendingRequests: 20, maxRequests: 30 }
                  outlierDetection: { consecutiveErrors: 2, baseEjectionTime: 5s, maxEjectionPercent: 50 }
                """);
        var in = withPolicy(inputs(), b);
        var set = ProxyResources.sidecarClusters(in);
        var config = translate(set, List.of(ProxyResources.outboundListener("127.0.0.1", 15001, "shop", set, b)));
        var vh = config.listeners().get(0).http().orElseThrow().virtualHosts().stream().filter(v -> v.domains().contains("product-catalog"))
                .findFirst().orElseThrow();
        var beta = vh.routes().get(0);
        assertTrue(beta.matches("/any", Map.of(":method", "GET", "x-beta", "1")::get));
        assertFalse(beta.matches("/any", Map.of(":method", "GET")::get));
        assertEquals("outbound|80|v2|product-catalog.shop.svc.cluster.local|ap-south", beta.clusters().get(0).cluster());
        var pinned = config.clusters().get("outbound|80|v2|product-catalog.shop.svc.cluster.local|ap-south");
        assertEquals(List.of(new InetSocketAddress("127.0.0.8", 15443)), pinned.endpoints().stream().map(ProxyConfig.EndpointSpec::address).toList(),
                "pinned to ap-south: only its gateway");
        var def = vh.routes().get(1);
        assertEquals(List.of(new ProxyConfig.WeightedCluster("outbound|80|v1|product-catalog.shop.svc.cluster.local", 90),
                new ProxyConfig.WeightedCluster("outbound|80|v3|product-catalog.shop.svc.cluster.local", 10)), def.clusters());
        assertEquals(java.time.Duration.ofSeconds(2), def.timeout());
        assertEquals(3, def.retry().numRetries());
        assertEquals(java.util.Set.of("connect-failure", "5xx"), def.retry().retryOn());
        assertTrue(config.clusters().get("outbound|80|v3|product-catalog.shop.svc.cluster.local").endpoints().isEmpty(),
                "a subset no endpoint has is an empty cluster: its share is answered 503");
        var v1 = config.clusters().get("outbound|80|v1|product-catalog.shop.svc.cluster.local");
        assertEquals(10, v1.limits().maxConnections());
        assertEquals(30, v1.limits().maxRequests());
        assertEquals(20.0, v1.limits().retryBudgetPercent());
        assertEquals(10, v1.limits().minRetryConcurrency(), "the budget's floor of retries in flight");
        assertEquals(2, v1.outlier().consecutiveFailures());
        assertEquals(java.time.Duration.ofSeconds(5), v1.outlier().baseEjection());
    }

    @Test
    void failoverPolicyOrdersRegionsAndMeshPolicyLimitsExports() throws Exception {
        var b = policy("""
                apiVersion: isthmus.dev/v1alpha1
                kind: FailoverPolicy
                metadata: { name: pc, namespace: shop }
                spec: { service: product-catalog, regions: [eu-west, ap-south] }
                ---
                apiVersion: isthmus.dev/v1alpha1
                kind: MeshPolicy
                metadata: { name: mesh }
                spec:
                  exports:
                  - { cluster: us-east, services: [shop/product-catalog] }
                """);
        var in = withPolicy(inputs(), b);
        var all = translate(ProxyResources.sidecarClusters(in), List.of()).clusters().get("outbound|80||product-catalog.shop.svc.cluster.local");
        assertEquals(List.of(new InetSocketAddress("127.0.0.1", 7001), new InetSocketAddress("127.0.0.9", 15443), new InetSocketAddress("127.0.0.8", 15443)),
                all.endpoints().stream().map(ProxyConfig.EndpointSpec::address).toList(), "local first, then eu-west before ap-south as the policy says");
        var gateway = translate(ProxyResources.gateway(in), List.of()).clusters().keySet();
        assertTrue(gateway.contains("outbound_.80_._.product-catalog.shop.svc.cluster.local"));
        assertFalse(gateway.contains("outbound_.80_._.order-processing.shop.svc.cluster.local"), "us-east exports only the catalogue");
    }

    @Test
    void authorizationPoliciesBecomeTheInboundListenersRbacFilters() throws Exception {
        var b = policy("""
                apiVersion: isthmus.dev/v1alpha1
                kind: AuthorizationPolicy
                metadata: { name: readers, namespace: shop }
                spec:
                  service: product-catalog
                  rules:
                  - from: [ { principal: "spiffe://us-east.acme.isthmus/ns/shop/sa/order-processing" }, { trustDomain: eu-west.acme.isthmus } ]
                    to: [ { methods: [GET], paths: ["/products*", /healthz] } ]
                ---
                apiVersion: isthmus.dev/v1alpha1
                kind: AuthorizationPolicy
                metadata: { name: no-admin, namespace: shop }
                spec:
                  action: DENY
                  rules:
                  - to: [ { paths: ["/admin*"] } ]
                """);
        var in = withPolicy(inputs(), b);
        var inbound = ProxyResources.inbound(in, "shop/product-catalog", new ProxyResources.HostPort("127.0.0.1", 15006),
                new ProxyResources.HostPort("127.0.0.1", 8080), false);
        var config = translate(new ProxyResources.ClusterSet(List.of(inbound.app()), List.of()), List.of(inbound.listener()));
        var listener = config.listeners().get(0);
        assertTrue(listener.mtls());
        var rbac = listener.http().orElseThrow().rbac().orElseThrow();
        String orders = "spiffe://us-east.acme.isthmus/ns/shop/sa/order-processing";
        assertTrue(rbac.permits(orders, "GET", "/products/7"));
        assertTrue(rbac.permits("spiffe://eu-west.acme.isthmus/ns/shop/sa/anyone", "GET", "/healthz"), "a whole trust domain");
        assertFalse(rbac.permits(orders, "POST", "/products/7"), "not an allowed method");
        assertFalse(rbac.permits("spiffe://us-east.acme.isthmus/ns/shop/sa/user-login", "GET", "/products"), "not an allowed caller");
        assertFalse(rbac.permits(orders, "GET", "/admin/products"), "the DENY policy of the namespace wins");
        assertFalse(rbac.permits(orders, "GET", "/healthz/x"), "an exact path is exact");

        var none = ProxyResources.inbound(inputs(), "shop/product-catalog", new ProxyResources.HostPort("127.0.0.1", 15006),
                new ProxyResources.HostPort("127.0.0.1", 8080), false);
        assertTrue(translate(new ProxyResources.ClusterSet(List.of(none.app()), List.of()), List.of(none.listener())).listeners().get(0).http()
                .orElseThrow().rbac().isEmpty(), "no policy: every authenticated caller passes");
    }

    @Test
    void meshPolicyPermissiveLetsTheInboundListenerServePlaintextToo() throws Exception {
        var strict = ProxyResources.inbound(inputs(), "shop/product-catalog", new ProxyResources.HostPort("127.0.0.1", 15006),
                new ProxyResources.HostPort("127.0.0.1", 8080), false);
        var strictListener = translate(new ProxyResources.ClusterSet(List.of(strict.app()), List.of()), List.of(strict.listener())).listeners().get(0);
        assertTrue(strictListener.mtls());
        assertFalse(strictListener.plaintextToo(), "no MeshPolicy: STRICT");

        var b = policy("""
                apiVersion: isthmus.dev/v1alpha1
                kind: MeshPolicy
                metadata: { name: mesh }
                spec:
                  mtls: PERMISSIVE
                """);
        var permissive = ProxyResources.inbound(withPolicy(inputs(), b), "shop/product-catalog", new ProxyResources.HostPort("127.0.0.1", 15006),
                new ProxyResources.HostPort("127.0.0.1", 8080), false);
        assertEquals(2, permissive.listener().getFilterChainsCount());
        var listener = translate(new ProxyResources.ClusterSet(List.of(permissive.app()), List.of()), List.of(permissive.listener())).listeners().get(0);
        assertTrue(listener.mtls(), "TLS callers still present a certificate");
        assertTrue(listener.plaintextToo());
    }

    @Test
    void aChangeToOneServiceRebuildsOnlyThatServicesResources() throws Exception {
        var memo = new ProxyResources.Memo();
        var in = inputs();
        var before = ProxyResources.sidecarClusters(in, memo);
        assertEquals(2, memo.rebuilt());
        var gatewayMemo = new ProxyResources.Memo();
        var gatewayBefore = ProxyResources.gateway(in, gatewayMemo);

        // the same inputs: nothing is built again, the versions stay
        var again = ProxyResources.sidecarClusters(inputs(), memo);
        assertEquals(0, memo.rebuilt());
        assertEquals(2, memo.reused());
        assertEquals(before.clustersVersion(), again.clustersVersion());
        assertEquals(before.assignmentsVersion(), again.assignmentsVersion());

        // one catalogue endpoint in eu-west moves: only the catalogue's resources are made anew
        var moved = new java.util.HashMap<>(in.remote());
        moved.put("eu-west", List.of(ep("eu-west", "pc-3", "10.0.0.1", 7001, "v1", true, 2), ep("eu-west", "pc-4", "10.0.0.2", 7001, "v1", false, 3)));
        var changed = new ProxyResources.Inputs(in.cluster(), in.region(), in.zone(), in.local(), moved, in.peers(), in.policy());
        var after = ProxyResources.sidecarClusters(changed, memo);
        assertEquals(1, memo.rebuilt(), "only product-catalog");
        assertEquals(1, memo.reused(), "order-processing as it was");
        var ordersBefore = before.clusters().stream().filter(c -> c.getName().contains("order-processing")).findFirst().orElseThrow();
        var ordersAfter = after.clusters().stream().filter(c -> c.getName().contains("order-processing")).findFirst().orElseThrow();
        org.junit.jupiter.api.Assertions.assertSame(ordersBefore, ordersAfter, "the unchanged service's cluster is the same message");
        assertEquals(before.clustersVersion(), after.clustersVersion(), "no cluster changed, only an assignment");
        assertFalse(before.assignmentsVersion().equals(after.assignmentsVersion()));
        // what a full build makes of the changed inputs is what the incremental one made
        var full = ProxyResources.sidecarClusters(changed);
        assertEquals(full.clusters(), after.clusters());
        assertEquals(full.assignments(), after.assignments());
        assertEquals(full.assignmentsVersion(), after.assignmentsVersion());

        // a remote change does not touch the gateway's (local) resources
        var gatewayAfter = ProxyResources.gateway(changed, gatewayMemo);
        assertEquals(0, gatewayMemo.rebuilt());
        assertEquals(gatewayBefore.assignmentsVersion(), gatewayAfter.assignmentsVersion());
    }
}
