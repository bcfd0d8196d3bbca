package dev.isthmus.proxy.config.xds;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.net.InetSocketAddress;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.Test;

class XdsTranslatorTest {

    static String sample() throws Exception {
        return new String(XdsTranslatorTest.class.getResourceAsStream("/bootstrap-orders.yaml").readAllBytes());
    }

    static ProxyConfig translate(String yaml) throws Exception {
        var b = XdsTranslator.parseBootstrap(yaml, "bootstrap.yaml");
        return XdsTranslator.translate("v1", b.getStaticResources().getListenersList(), b.getStaticResources().getClustersList(), List.of());
    }

    @Test
    void anEnvoyBootstrapBecomesListenersAndClusters() throws Exception {
        Path file = Files.createTempFile("bootstrap", ".yaml");
        Files.writeString(file, sample());
        ProxyConfig c = XdsTranslator.fromBootstrapFile(file);
        assertEquals(1, c.listeners().size());
        var l = c.listeners().get(0);
        assertEquals(new InetSocketAddress("127.0.0.1", 20063), l.address());
        assertEquals("product-catalog", l.cluster());
        var cluster = c.clusters().get("product-catalog");
        assertEquals(ProxyConfig.LbPolicy.LEAST_REQUEST, cluster.lbPolicy());
        assertEquals(Duration.ofMillis(500), cluster.connectTimeout());
        assertTrue(cluster.mtls());
        assertEquals(List.of("spiffe://us-east.acme.isthmus/ns/shop/sa/product-catalog"), cluster.expectedSpiffeIds());
        assertEquals(3, cluster.endpoints().size());
        assertEquals(3, cluster.endpoints().get(1).weight());
        assertEquals(new ProxyConfig.Locality("us-east", "us-east-1a", ""), cluster.endpoints().get(0).locality());
        assertEquals(1, cluster.endpoints().get(2).priority());
        assertFalse(cluster.endpoints().get(2).healthy());
        assertEquals(140, cluster.overprovisioningFactor());
    }

    @Test
    void aBootstrapWithOtherFieldsReadsTheSameAndMisspeltFieldsAreRefusedWhereTheyAre() throws Exception {
        Path lean = Files.createTempFile("bootstrap", ".yaml");
        Files.writeString(lean, sample());
        Path full = Files.createTempFile("bootstrap", ".yaml");
        Files.writeString(full, "node: { id: orders-1, cluster: shop/order-processing }\n" + sample());
        ProxyConfig a = XdsTranslator.fromBootstrapFile(lean);
        ProxyConfig b = XdsTranslator.fromBootstrapFile(full);
        assertEquals(a.listeners(), b.listeners());
        assertEquals(a.clusters(), b.clusters());
        Files.writeString(lean, sample().replace("stat_prefix: product-catalog", "stat_prefx: product-catalog"));
        var e = assertThrows(XdsTranslator.ConfigException.class, () -> XdsTranslator.fromBootstrapFile(lean));
        assertTrue(e.getMessage().contains(lean + ": static_resources.listeners[0]: not an Envoy v3 Listener") && e.getMessage().contains("stat_prefx"),
                e.getMessage());
        Files.writeString(full, "nod: { id: orders-1 }\n" + sample());
        e = assertThrows(XdsTranslator.ConfigException.class, () -> XdsTranslator.fromBootstrapFile(full));
        assertTrue(e.getMessage().contains("not an Envoy v3 bootstrap") && e.getMessage().contains("nod"), e.getMessage());
    }

    static String refusal(String yaml) {
        return String.join("\n", assertThrows(XdsTranslator.ConfigException.class, () -> translate(yaml)).errors());
    }

    @Test
    void everyErrorNamesTheResourceAndTheField() throws Exception {
        String s = sample();
        assertTrue(refusal(s.replace("port_value: 20052", "port_value: 70000")).contains(
                "Cluster 'product-catalog': load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.port_value: 70000 is not a port"));
        assertTrue(refusal(s.replace("cluster: product-catalog\n", "cluster: nowhere\n")).contains(
                "Listener 'upstream-product-catalog': filter_chains[0].filters[0].typed_config.cluster: no cluster named 'nowhere'"));
        assertTrue(refusal(s.replace("lb_policy: LEAST_REQUEST", "lb_policy: MAGLEV")).contains(
                "Cluster 'product-catalog': lb_policy: MAGLEV is not supported"));
        assertTrue(refusal(s.replace("type: STATIC", "type: STRICT_DNS")).contains("type: STRICT_DNS is not supported"));
        assertTrue(refusal(s.replace("san_type: URI", "san_type: DNS")).contains(
                "match_typed_subject_alt_names[0]: only san_type URI with an exact matcher"));
        assertTrue(refusal(s.replace("address: 127.0.0.2", "address: catalog.example")).contains("is not an IP address"));
        assertTrue(refusal(s.replace("envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
                "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager").replace("cluster: product-catalog\n", "\n"))
                .contains("filter_chains[0].filters[0].typed_config.route_config: is missing"));
        String od = "lb_policy: LEAST_REQUEST\n    outlier_detection: { base_ejection_time: 30s, max_ejection_time: 10s }";
        assertTrue(refusal(s.replace("lb_policy: LEAST_REQUEST", od)).contains(
                "Cluster 'product-catalog': outlier_detection.max_ejection_time: 10000 ms is less than base_ejection_time (30000 ms)"), refusal(s.replace("lb_policy: LEAST_REQUEST", od)));
        assertTrue(refusal(s.replace("lb_policy: LEAST_REQUEST", "lb_policy: LEAST_REQUEST\n    outlier_detection: { interval: 0s }"))
                .contains("Cluster 'product-catalog': outlier_detection.interval: must be more than 0"));
        var outlier = translate(s.replace("lb_policy: LEAST_REQUEST", "lb_policy: LEAST_REQUEST\n    outlier_detection: { base_ejection_time: 400s, interval: 2s }"))
                .clusters().get("product-catalog").outlier();
        assertEquals(new ProxyConfig.Outlier(5, java.time.Duration.ofSeconds(400), 10, java.time.Duration.ofSeconds(2), java.time.Duration.ofSeconds(400)), outlier,
                "Envoy's defaults, and max_ejection_time at least the base time");
        // two errors in one set: both reported
        String both = refusal(s.replace("port_value: 20052", "port_value: 0").replace("port_value: 20063", "port_value: 0"));
        assertTrue(both.contains("lb_endpoints[0]") && both.contains("Listener"), both);
    }

    /**
     * drop_overloads: each category's share of the traffic, with Envoy's three denominators (a
     * numerator above its denominator is all of it); a category without a name or a share, or an
     * unknown denominator, is refused where it is.
     */
    @Test
    void dropOverloadsAreReadAsSharesAndBadOnesAreRefusedWhereTheyAre() throws Exception {
        String s = sample();
        String policy = "policy: { overprovisioning_factor: 140 }";
        assertEquals(List.of(), translate(s).clusters().get("product-catalog").drops());
        var spec = translate(s.replace(policy, "policy: { overprovisioning_factor: 140, drop_overloads: ["
                + "{ category: throttle, drop_percentage: { numerator: 25, denominator: TEN_THOUSAND } },"
                + "{ category: isolated, drop_percentage: { numerator: 150 } } ] }")).clusters().get("product-catalog");
        assertEquals(List.of(new ProxyConfig.DropOverload("throttle", 0.0025), new ProxyConfig.DropOverload("isolated", 1.0)), spec.drops());
        assertEquals(java.util.Optional.of("isolated"), spec.dropsAll());
        assertEquals(java.util.Optional.empty(), translate(s.replace(policy, "policy: { drop_overloads: [ { category: half, drop_percentage: "
                + "{ numerator: 500000, denominator: MILLION } } ] }")).clusters().get("product-catalog").dropsAll());
        String bad = refusal(s.replace(policy, "policy: { drop_overloads: [ { drop_percentage: { numerator: 5 } }, { category: x } ] }"));
        assertTrue(bad.contains("Cluster 'product-catalog': load_assignment.policy.drop_overloads[0].category: is empty"), bad);
        assertTrue(bad.contains("Cluster 'product-catalog': load_assignment.policy.drop_overloads[1].drop_percentage: is missing"), bad);
    }

    @Test
    void unreadableFilesSayWhereAndWhat() {
        var e = assertThrows(XdsTranslator.ConfigException.class, () -> XdsTranslator.parseBootstrap("static_resources: [", "b.yaml"));
        assertTrue(e.getMessage().startsWith("b.yaml: not YAML or JSON"), e.getMessage());
        e = assertThrows(XdsTranslator.ConfigException.class, () -> XdsTranslator.parseBootstrap("static_resources: { listners: [] }", "b.yaml"));
        assertTrue(e.getMessage().contains("b.yaml: not an Envoy v3 bootstrap") && e.getMessage().contains("listners"), e.getMessage());
    }
}
