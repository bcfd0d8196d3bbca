package dev.isthmus.proxy.config.xds;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import com.google.gson.Gson;
import com.google.protobuf.util.JsonFormat;
import io.envoyproxy.envoy.config.bootstrap.v3.Bootstrap;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;

/** ProtoJson (the lite messages' JSON reader) against protobuf's own JSON parser, on Envoy's generated messages. */
class ProtoJsonTest {

    /** Every honoured kind of field: wrappers, durations, enums by name and number, maps, oneofs, Struct, Any, lowerCamel names. */
    private static final String BOOTSTRAP = """
            node:
              id: sidecar~10.0.0.7~orders-1.shop~shop.svc.cluster.local
              cluster: orders
              locality: { region: us-east, zone: us-east-1a }
              metadata:
                ISTHMUS_PROXY_TYPE: sidecar
                ISTHMUS_PORTS: [ { service_port: 8080, protocol: http, inbound: true }, null, 1.5 ]
            static_resources:
              listeners:
              - name: outbound
                address: { socketAddress: { address: 127.0.0.1, portValue: 15001 } }
                listener_filters:
                - name: envoy.filters.listener.tls_inspector
                  typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector }
                filter_chains:
                - filter_chain_match: { transport_protocol: tls }
                  transport_socket:
                    name: envoy.transport_sockets.tls
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
                      require_client_certificate: true
                      common_tls_context: { alpn_protocols: [ h2, "http/1.1" ] }
                  filters:
                  - name: envoy.filters.network.http_connection_manager
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
                      stat_prefix: outbound
                      http_filters:
                      - name: envoy.filters.http.rbac
                        typed_config:
                          "@type": type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC
                          rules:
                            action: DENY
                            policies:
                              no-admin:
                                permissions: [ { url_path: { path: { prefix: /admin, ignore_case: true } } } ]
                                principals: [ { authenticated: { principal_name: { exact: "spiffe://eu-west.acme.isthmus/ns/shop/sa/x" } } } ]
                      - name: envoy.filters.http.router
                        typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }
                      route_config:
                        name: outbound
                        virtual_hosts:
                        - name: catalog
                          domains: [ "catalog", "catalog:8080" ]
                          routes:
                          - match: { prefix: /api, headers: [ { name: x-canary, string_match: { exact: "1" } } ] }
                            route:
                              weighted_clusters:
                                clusters: [ { name: catalog-v1, weight: 90 }, { name: catalog-v2, weight: "10" } ]
                              timeout: 1.5s
                              retry_policy: { retry_on: "5xx,connect-failure", num_retries: 2 }
                          - match: { safe_regex: { regex: "^/v[0-9]+/.*" } }
                            route: { cluster: catalog-v1, timeout: 0.000000001s }
              clusters:
              - name: catalog-v1
                type: EDS
                eds_cluster_config: { eds_config: {}, service_name: catalog }
                connect_timeout: 2s
                lb_policy: 1
                circuit_breakers:
                  thresholds:
                  - { priority: "1", max_connections: 1024, max_requests: 4294967295, retry_budget: { budget_percent: { value: 25.5 }, min_retry_concurrency: 3 } }
                outlier_detection: { consecutive_5xx: 5, interval: 10s, base_ejection_time: 30s, max_ejection_percent: 50 }
                typed_extension_protocol_options:
                  envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
                    "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
                    explicit_http_config: { http2_protocol_options: {} }
              - name: catalog-v2
                type: STATIC
                load_assignment:
                  cluster_name: catalog-v2
                  policy: { overprovisioning_factor: 140, drop_overloads: [ { category: lb, drop_percentage: { numerator: 5, denominator: TEN_THOUSAND } } ] }
                  endpoints:
                  - locality: { region: eu-west }
                    priority: 1
                    lb_endpoints:
                    - endpoint: { address: { socket_address: { address: 127.0.0.2, port_value: 20152 } } }
                      health_status: UNHEALTHY
                      load_balancing_weight: 3
            """;

    private static Bootstrap protobufsOwn(Object tree) throws Exception {
        var types = JsonFormat.TypeRegistry.newBuilder().add(List.of(
                io.envoyproxy.envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector.getDescriptor(),
                io.envoyproxy.envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext.getDescriptor(),
                io.envoyproxy.envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext.getDescriptor(),
                io.envoyproxy.envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager.getDescriptor(),
                io.envoyproxy.envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy.getDescriptor(),
                io.envoyproxy.envoy.extensions.filters.http.rbac.v3.RBAC.getDescriptor(),
                io.envoyproxy.envoy.extensions.filters.http.router.v3.Router.getDescriptor(),
                io.envoyproxy.envoy.extensions.upstreams.http.v3.HttpProtocolOptions.getDescriptor())).build();
        var b = Bootstrap.newBuilder();
        JsonFormat.parser().usingTypeRegistry(types).merge(new Gson().toJson(tree), b);
        return b.build();
    }

    private static Bootstrap ours(Object tree) throws Exception {
        return Bootstrap.parseFrom(ProtoJson.encode(tree, "envoy.config.bootstrap.v3.Bootstrap", ""));
    }

    @Test
    void bootstrapsReadAsProtobufsOwnJsonParserReadsThem() throws Exception {
        Object tree = YamlJson.load(BOOTSTRAP);
        assertEquals(protobufsOwn(tree), ours(tree));
        Object orders = YamlJson.load(Files.readString(Path.of("src/test/resources/bootstrap-orders.yaml")));
        assertEquals(protobufsOwn(orders), ours(orders));
    }

    @Test
    void eachMistakeIsNamedWithWhereItIs() throws Exception {
        var notHonoured = assertThrows(ProtoJson.JsonError.class, () -> ProtoJson.encode(
                YamlJson.load("static_resources: { clusters: [ { name: a, dns_lookup_family: V4_ONLY } ] }"), "envoy.config.bootstrap.v3.Bootstrap", ""));
        assertEquals("Cannot find field: dns_lookup_family in message envoy.config.cluster.v3.Cluster (at static_resources.clusters[0])",
                notHonoured.getMessage()); // Envoy's message has the field; the proxies do not honour it
        refused("static_resources: { clusters: [ { name: a, lb_policy: FASTEST } ] }",
                "Invalid enum value: \"FASTEST\" for enum type: envoy.config.cluster.v3.Cluster.LbPolicy (at static_resources.clusters[0].lb_policy)");
        refused("static_resources: { clusters: [ { name: a, connect_timeout: 5 } ] }",
                "Failed to parse duration: 5 (a number of seconds ending in 's', such as \"1.5s\") (at static_resources.clusters[0].connect_timeout)");
        refused("static_resources: { listeners: [ { address: { socket_address: { port_value: 80, named_port: http } } } ] }",
                "Cannot set field named_port because another field port_value belonging to the same oneof (port_specifier) has already been set"
                        + " (at static_resources.listeners[0].address.socket_address.named_port)");
        refused("static_resources: { clusters: [ { name: a, circuit_breakers: { thresholds: [ { max_connections: -1 } ] } } ] }",
                "Not an uint32 value: -1 (at static_resources.clusters[0].circuit_breakers.thresholds[0].max_connections)");
        refused("static_resources: { clusters: [ { name: a, transport_socket: { typed_config: { sni: x } } } ] }",
                "Missing type url when parsing: an object (at static_resources.clusters[0].transport_socket.typed_config)");
        refused("static_resources: { clusters: [ { name: a, transport_socket: { typed_config: { '@type': type.googleapis.com/x.Y } } } ] }",
                "Cannot resolve type: type.googleapis.com/x.Y (at static_resources.clusters[0].transport_socket.typed_config.@type)");
        refused("static_resources: { listeners: { name: a } }", "Expected an array for listeners but found an object (at static_resources.listeners)");
        refused("static_resources: { listeners: [ a ] }",
                "Expect message object but got: \"a\" for envoy.config.listener.v3.Listener (at static_resources.listeners[0])");
        refused("static_resources: { clusters: [ { name: a, name: b } ] }", null); // YAML refuses a key given twice before this reader sees it
        refused("static_resources: { clusters: [ { name: a, circuit_breakers: { thresholds: [ { max_connections: 1, maxConnections: 2 } ] } } ] }",
                "Field envoy.config.cluster.v3.CircuitBreakers.Thresholds.max_connections has already been set"
                        + " (at static_resources.clusters[0].circuit_breakers.thresholds[0].max_connections)");
    }

    private static void refused(String yaml, String message) throws Exception {
        if (message == null) {
            assertThrows(YamlJson.YamlError.class, () -> YamlJson.load(yaml));
            return;
        }
        Object tree = YamlJson.load(yaml);
        var e = assertThrows(ProtoJson.JsonError.class, () -> ProtoJson.encode(tree, "envoy.config.bootstrap.v3.Bootstrap", ""));
        assertEquals(message, e.getMessage());
        // and protobuf's own parser refuses it too
        assertThrows(com.google.protobuf.InvalidProtocolBufferException.class, () -> protobufsOwn(tree), yaml);
    }

    @Test
    void theTypeUrlsAreEnvoysNames() {
        String p = "type.googleapis.com/";
        assertEquals(p + io.envoyproxy.envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy.getDescriptor().getFullName(), XdsTranslator.TCP_PROXY);
        assertEquals(p + io.envoyproxy.envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager.getDescriptor().getFullName(),
                XdsTranslator.HTTP_CONNECTION_MANAGER);
        assertEquals(p + io.envoyproxy.envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext.getDescriptor().getFullName(), XdsTranslator.UPSTREAM_TLS);
        assertEquals(p + io.envoyproxy.envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext.getDescriptor().getFullName(),
                XdsTranslator.DOWNSTREAM_TLS);
        assertEquals(p + io.envoyproxy.envoy.extensions.filters.http.router.v3.Router.getDescriptor().getFullName(), XdsTranslator.ROUTER);
        assertEquals(p + io.envoyproxy.envoy.extensions.filters.http.rbac.v3.RBAC.getDescriptor().getFullName(), XdsTranslator.RBAC);
        assertEquals(p + io.envoyproxy.envoy.extensions.upstreams.http.v3.HttpProtocolOptions.getDescriptor().getFullName(),
                XdsTranslator.HTTP_PROTOCOL_OPTIONS);
        assertEquals(p + io.envoyproxy.envoy.config.listener.v3.Listener.getDescriptor().getFullName(), AdsClient.LISTENER);
        assertEquals(p + io.envoyproxy.envoy.config.cluster.v3.Cluster.getDescriptor().getFullName(), AdsClient.CLUSTER);
        assertEquals(p + io.envoyproxy.envoy.config.endpoint.v3.ClusterLoadAssignment.getDescriptor().getFullName(), AdsClient.ENDPOINT);
    }
}
