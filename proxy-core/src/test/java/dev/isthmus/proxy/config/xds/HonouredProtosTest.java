package dev.isthmus.proxy.config.xds;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.protobuf.Any;
import com.google.protobuf.UInt32Value;
import io.envoyproxy.envoy.config.cluster.v3.CircuitBreakers;
import io.envoyproxy.envoy.config.cluster.v3.Cluster;
import io.envoyproxy.envoy.config.core.v3.Address;
import io.envoyproxy.envoy.config.core.v3.SocketAddress;
import io.envoyproxy.envoy.config.endpoint.v3.ClusterLoadAssignment;
import io.envoyproxy.envoy.config.endpoint.v3.Endpoint;
import io.envoyproxy.envoy.config.endpoint.v3.LbEndpoint;
import io.envoyproxy.envoy.config.endpoint.v3.LocalityLbEndpoints;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.stream.Collectors;
import org.junit.jupiter.api.Test;

/** The proxies' cut-down xDS messages (src/main/proto/xds) against Envoy's. */
class HonouredProtosTest {

    @Test
    void theProtosInTheTreeAreWhatHonouredProtosWrites() throws Exception {
        // Envoy's names, numbers and types, read off Envoy's descriptors: a field given a wrong number cannot slip in by hand
        Path root = Path.of("src/main");
        var expected = new HonouredProtos().files();
        for (var e : expected.entrySet()) {
            Path p = root.resolve(e.getKey());
            assertTrue(Files.exists(p), p + " is missing; run HonouredProtos.main");
            assertEquals(e.getValue(), Files.readString(p), p + " differs from what HonouredProtos writes; run HonouredProtos.main");
        }
        try (var walk = Files.walk(root.resolve("proto/xds"))) {
            var extra = walk.filter(Files::isRegularFile).map(p -> root.relativize(p).toString()).filter(p -> !expected.containsKey(p))
                    .collect(Collectors.toList());
            assertEquals(List.of(), extra, "protos HonouredProtos no longer writes");
        }
    }

    @Test
    void aResourceWithFieldsNotHonouredIsReadAndKeptWhole() throws Exception {
        var envoy = Cluster.newBuilder().setName("orders").setType(Cluster.DiscoveryType.STATIC)
                .setDnsLookupFamily(Cluster.DnsLookupFamily.V4_ONLY) // not honoured
                .setPerConnectionBufferLimitBytes(UInt32Value.of(32_768)) // not honoured
                .setCircuitBreakers(CircuitBreakers.newBuilder().addThresholds(CircuitBreakers.Thresholds.newBuilder()
                        .setMaxConnections(UInt32Value.of(7)).setMaxPendingRequests(UInt32Value.of(9)))) // the second is not honoured
                .setLoadAssignment(ClusterLoadAssignment.newBuilder().setClusterName("orders").addEndpoints(LocalityLbEndpoints.newBuilder()
                        .addLbEndpoints(LbEndpoint.newBuilder().setEndpoint(Endpoint.newBuilder().setHostname("orders-1") // not honoured
                                .setAddress(Address.newBuilder().setSocketAddress(SocketAddress.newBuilder().setAddress("127.0.0.1")
                                        .setPortValue(8080)))))))
                .build();
        var ours = dev.isthmus.xds.envoy.config.cluster.v3.Cluster.parseFrom(envoy.toByteString());
        assertEquals("orders", ours.getName());
        assertEquals(7, ours.getCircuitBreakers().getThresholds(0).getMaxConnections().getValue());
        assertEquals(8080, ours.getLoadAssignment().getEndpoints(0).getLbEndpoints(0).getEndpoint().getAddress().getSocketAddress().getPortValue());
        // the fields not honoured are kept as unknown fields: written back (the last good config on disk is written
        // from these), it is Envoy's resource again, field for field
        assertEquals(envoy, Cluster.parseFrom(ours.toByteString()));
        assertEquals(envoy, Any.newBuilder().setTypeUrl(AdsClient.CLUSTER).setValue(ours.toByteString()).build().unpack(Cluster.class));

        var config = XdsTranslator.translate("t", List.of(), List.of(ours), List.of());
        assertEquals(7, config.clusters().get("orders").limits().maxConnections());
    }

    @Test
    void theTrustBridgesMessagesReadAndWriteAsMeshApisDo() throws Exception {
        var full = dev.isthmus.api.trust.v1.IssueResponse.newBuilder().setCertificatePem("leaf").addChainPem("intermediate").setNotAfterUnix(1_800_000_000L)
                .setBundle(dev.isthmus.api.trust.v1.TrustBundle.newBuilder().setTrustDomain("us-east.acme.isthmus").setSequence(7)
                        .putRoots("eu-west.acme.isthmus", dev.isthmus.api.trust.v1.RootCertificates.newBuilder().addCertificatePem("root").build()))
                .build();
        var lite = dev.isthmus.lite.trust.v1.IssueResponse.parseFrom(full.toByteString());
        assertEquals("root", lite.getBundle().getRootsOrThrow("eu-west.acme.isthmus").getCertificatePem(0));
        assertEquals(full, dev.isthmus.api.trust.v1.IssueResponse.parseFrom(lite.toByteString()));
    }

    @Test
    void theProxiesCallTheMethodsTheServersDeclare() {
        // the proxies' gRPC client names its methods as strings; the servers' generated services declare them
        assertEquals(dev.isthmus.api.trust.v1.WorkloadCertificatesGrpc.getIssueMethod().getFullMethodName(), dev.isthmus.proxy.identity.SvidClient.ISSUE);
        assertEquals(dev.isthmus.api.trust.v1.WorkloadCertificatesGrpc.getWatchBundleMethod().getFullMethodName(),
                dev.isthmus.proxy.identity.SvidClient.WATCH_BUNDLE);
        assertEquals(io.envoyproxy.envoy.service.discovery.v3.AggregatedDiscoveryServiceGrpc.getStreamAggregatedResourcesMethod().getFullMethodName(),
                AdsClient.METHOD);
    }

    @Test
    void aBootstrapFieldThatIsNotHonouredIsRefusedByName() {
        String yaml = """
                static_resources:
                  clusters:
                  - name: orders
                    type: STATIC
                    dns_lookup_family: V4_ONLY
                    load_assignment: { cluster_name: orders }
                """;
        var e = assertThrows(XdsTranslator.ConfigException.class, () -> XdsTranslator.parseBootstrap(yaml, "b.yaml"));
        assertTrue(e.getMessage().contains("dns_lookup_family") && e.getMessage().contains("envoy.config.cluster.v3.Cluster"), e.getMessage());
        // a oneof's case not honoured is still told apart: the translator names it, where it is
        String redirect = """
                static_resources:
                  listeners:
                  - name: out
                    address: { socket_address: { address: 127.0.0.1, port_value: 15001 } }
                    filter_chains:
                    - filters:
                      - name: envoy.filters.network.http_connection_manager
                        typed_config:
                          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
                          stat_prefix: out
                          route_config:
                            virtual_hosts:
                            - name: all
                              domains: ["*"]
                              routes:
                              - match: { prefix: / }
                                redirect: {}
                """;
        var refused = assertThrows(XdsTranslator.ConfigException.class, () -> {
            var b = XdsTranslator.parseBootstrap(redirect, "r.yaml");
            XdsTranslator.translate("t", b.getStaticResources().getListenersList(), List.of(), List.of());
        });
        assertTrue(refused.getMessage().contains("routes[0]: only 'route' actions are supported"), refused.getMessage());
    }
}
