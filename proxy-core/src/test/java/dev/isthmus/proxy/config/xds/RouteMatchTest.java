package dev.isthmus.proxy.config.xds;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.protobuf.Any;
import io.envoyproxy.envoy.config.cluster.v3.Cluster;
import io.envoyproxy.envoy.config.core.v3.Address;
import io.envoyproxy.envoy.config.core.v3.SocketAddress;
import io.envoyproxy.envoy.config.endpoint.v3.ClusterLoadAssignment;
import io.envoyproxy.envoy.config.listener.v3.Filter;
import io.envoyproxy.envoy.config.listener.v3.FilterChain;
import io.envoyproxy.envoy.config.listener.v3.Listener;
import io.envoyproxy.envoy.config.route.v3.HeaderMatcher;
import io.envoyproxy.envoy.config.route.v3.Route;
import io.envoyproxy.envoy.config.route.v3.RouteAction;
import io.envoyproxy.envoy.config.route.v3.RouteConfiguration;
import io.envoyproxy.envoy.config.route.v3.RouteMatch;
import io.envoyproxy.envoy.config.route.v3.VirtualHost;
import io.envoyproxy.envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager;
import io.envoyproxy.envoy.type.matcher.v3.RegexMatcher;
import io.envoyproxy.envoy.type.matcher.v3.StringMatcher;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** Routes matched by regular expression and headers (the method included), as the controller sends TrafficPolicy matches. */
class RouteMatchTest {

    private static ProxyConfig translate(RouteMatch... matches) throws XdsTranslator.ConfigException, com.google.protobuf.InvalidProtocolBufferException {
        var vh = VirtualHost.newBuilder().setName("v").addDomains("*");
        for (RouteMatch m : matches) {
            vh.addRoutes(Route.newBuilder().setMatch(m).setRoute(RouteAction.newBuilder().setCluster("c")));
        }
        var hcm = HttpConnectionManager.newBuilder().setStatPrefix("t").setRouteConfig(RouteConfiguration.newBuilder().setName("r").addVirtualHosts(vh))
                .build();
        var listener = Listener.newBuilder().setName("l").setAddress(Address.newBuilder().setSocketAddress(SocketAddress.newBuilder()
                .setAddress("127.0.0.1").setPortValue(1))).addFilterChains(FilterChain.newBuilder().addFilters(Filter.newBuilder()
                        .setName("envoy.filters.network.http_connection_manager").setTypedConfig(Any.pack(hcm)))).build();
        var cluster = Cluster.newBuilder().setName("c").setType(Cluster.DiscoveryType.STATIC)
                .setLoadAssignment(ClusterLoadAssignment.newBuilder().setClusterName("c")).build();
        // built with Envoy's classes, read as the proxy reads them off the wire
        return XdsTranslator.translate("t", List.of(dev.isthmus.xds.envoy.config.listener.v3.Listener.parseFrom(listener.toByteString())),
                List.of(dev.isthmus.xds.envoy.config.cluster.v3.Cluster.parseFrom(cluster.toByteString())), List.of());
    }

    @Test
    void regexAndHeaderMatchesAreHonoured() throws Exception {
        var config = translate(RouteMatch.newBuilder().setSafeRegex(RegexMatcher.newBuilder().setRegex("/items/[0-9]+"))
                .addHeaders(HeaderMatcher.newBuilder().setName(":method").setStringMatch(StringMatcher.newBuilder().setExact("POST")))
                .addHeaders(HeaderMatcher.newBuilder().setName("X-Canary").setPresentMatch(true)).build());
        var route = config.listeners().get(0).http().orElseThrow().virtualHosts().get(0).routes().get(0);
        Map<String, String> post = Map.of(":method", "POST", "x-canary", "1");
        assertTrue(route.matches("/items/42", post::get));
        assertFalse(route.matches("/items/42x", post::get), "the expression must match the whole path");
        assertFalse(route.matches("/items/42", Map.of(":method", "GET", "x-canary", "1")::get), "another method");
        assertFalse(route.matches("/items/42", Map.of(":method", "POST")::get), "the header must be present");
    }

    @Test
    void unsupportedMatchersAreRefusedByField() {
        var e = org.junit.jupiter.api.Assertions.assertThrows(XdsTranslator.ConfigException.class, () -> translate(RouteMatch.newBuilder().setPrefix("/")
                .addHeaders(HeaderMatcher.newBuilder().setName("x").setStringMatch(StringMatcher.newBuilder().setPrefix("a"))).build()));
        assertEquals(List.of("Listener 'l': filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0].routes[0].match.headers[0]"
                + ".string_match: only a case-sensitive exact match is supported"), e.errors());
    }
}
