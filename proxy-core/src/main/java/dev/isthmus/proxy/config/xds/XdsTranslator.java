package dev.isthmus.proxy.config.xds;

import com.google.protobuf.InvalidProtocolBufferException;
import com.google.protobuf.Parser;
import dev.isthmus.xds.envoy.config.bootstrap.v3.Bootstrap;
import dev.isthmus.xds.envoy.config.cluster.v3.Cluster;
import dev.isthmus.xds.envoy.config.core.v3.Address;
import dev.isthmus.xds.envoy.config.core.v3.HealthStatus;
import dev.isthmus.xds.envoy.config.endpoint.v3.ClusterLoadAssignment;
import dev.isthmus.xds.envoy.config.listener.v3.Listener;
import dev.isthmus.xds.envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager;
import dev.isthmus.xds.envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy;
import dev.isthmus.xds.envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext;
import dev.isthmus.xds.envoy.extensions.transport_sockets.tls.v3.SubjectAltNameMatcher;
import dev.isthmus.xds.envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext;
import dev.isthmus.xds.google.protobuf.Any;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * Turns xDS v3 resources into a {@link ProxyConfig}, refusing the whole set on any error with every
 * error named by resource and field path (the reason an ADS client NACKs with). The fields honoured
 * are listed in docs/xds.md. The messages are the proxies' own cut-down copies of Envoy's
 * ({@code dev.isthmus.xds.envoy.*}, from src/main/proto/xds): a field they do not know is ignored in a
 * resource that came over ADS (kept as an unknown field, so the last good config on disk is whole)
 * and refused by name in a bootstrap file. A feature this proxy does not have yet
 * (an HTTP connection manager, weighted TCP clusters, DNS clusters, other load-balancing policies)
 * is an error rather than silently different behaviour.
 */
public final class XdsTranslator {

    // type URLs: the lite messages have no descriptors to read their full names from (ProtoJsonTest checks them against Envoy's)
    public static final String TCP_PROXY = "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy";
    public static final String HTTP_CONNECTION_MANAGER = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";
    public static final String UPSTREAM_TLS = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext";
    public static final String DOWNSTREAM_TLS = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext";
    public static final String ROUTER = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router";
    public static final String RBAC = "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC";
    public static final String HTTP_PROTOCOL_OPTIONS = "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions";

    /** The resources were refused; {@link #errors} says where and why, one line each. */
    public static final class ConfigException extends Exception {
        private final List<String> errors;

        public ConfigException(List<String> errors) {
            super(String.join("; ", errors));
            this.errors = List.copyOf(errors);
        }

        public List<String> errors() {
            return errors;
        }
    }

    private XdsTranslator() {
    }

    /** Reads an Envoy bootstrap file (YAML, or JSON) and translates its {@code static_resources}. */
    public static ProxyConfig fromBootstrapFile(Path file) throws ConfigException, IOException {
        String source = file.toString();
        Object tree = tree(Files.readString(file), source);
        var listeners = new ArrayList<Listener>();
        var clusters = new ArrayList<Cluster>();
        if (!staticResourcesOnly(tree, source, listeners, clusters)) {
            var s = parseBootstrapTree(tree, source).getStaticResources();
            listeners.addAll(s.getListenersList());
            clusters.addAll(s.getClustersList());
        }
        return translate("static:" + file.getFileName(), listeners, clusters, List.of());
    }

    /**
     * A bootstrap with nothing but {@code static_resources.listeners} and {@code .clusters} (as the
     * sidecar's are) is read one Listener and one Cluster at a time, so that an error names the one
     * it is in ({@code static_resources.listeners[N]}). Any other field: false, and the whole file is
     * read as a {@code Bootstrap} (of which only {@code node} and {@code static_resources} are known).
     */
    private static boolean staticResourcesOnly(Object root, String source, List<Listener> listeners, List<Cluster> clusters)
            throws ConfigException {
        if (!(root instanceof Map<?, ?> top) || top.size() != 1) {
            return false;
        }
        Object resources = top.containsKey("static_resources") ? top.get("static_resources") : top.get("staticResources");
        if (!(resources instanceof Map<?, ?> lists)) {
            return false;
        }
        for (var e : lists.entrySet()) {
            if (!(e.getKey().equals("listeners") || e.getKey().equals("clusters")) || !(e.getValue() instanceof List)) {
                return false;
            }
        }
        var errors = new ArrayList<String>();
        for (String list : List.of("listeners", "clusters")) {
            var items = (List<?>) lists.get(list);
            for (int i = 0; items != null && i < items.size(); i++) {
                boolean listener = list.equals("listeners");
                try {
                    if (listener) {
                        listeners.add(Listener.parseFrom(ProtoJson.encode(items.get(i), "envoy.config.listener.v3.Listener", "")));
                    } else {
                        clusters.add(Cluster.parseFrom(ProtoJson.encode(items.get(i), "envoy.config.cluster.v3.Cluster", "")));
                    }
                } catch (ProtoJson.JsonError | InvalidProtocolBufferException e) {
                    errors.add(source + ": static_resources." + list + "[" + i + "]: not an Envoy v3 " + (listener ? "Listener" : "Cluster") + ": "
                            + e.getMessage());
                }
            }
        }
        if (!errors.isEmpty()) {
            throw new ConfigException(errors);
        }
        return true;
    }

    /** Parses bootstrap text (YAML is a superset of JSON, so both are read the same way). */
    public static Bootstrap parseBootstrap(String text, String source) throws ConfigException {
        return parseBootstrapTree(tree(text, source), source);
    }

    private static Object tree(String text, String source) throws ConfigException {
        try {
            return YamlJson.load(text);
        } catch (YamlJson.YamlError e) {
            throw new ConfigException(List.of(source + ": not YAML or JSON: " + e.getMessage()));
        }
    }

    private static Bootstrap parseBootstrapTree(Object tree, String source) throws ConfigException {
        try {
            return Bootstrap.parseFrom(ProtoJson.encode(tree, "envoy.config.bootstrap.v3.Bootstrap", ""));
        } catch (ProtoJson.JsonError | InvalidProtocolBufferException e) {
            throw new ConfigException(List.of(source + ": not an Envoy v3 bootstrap: " + e.getMessage()));
        }
    }

    /** Translates a full set of resources; EDS clusters take their endpoints from {@code assignments}. */
    public static ProxyConfig translate(String version, List<Listener> listeners, List<Cluster> clusters, List<ClusterLoadAssignment> assignments)
            throws ConfigException {
        var errors = new ArrayList<String>();
        var byName = new HashMap<String, ClusterLoadAssignment>();
        for (var a : assignments) {
            byName.put(a.getClusterName(), a);
        }
        var outClusters = new LinkedHashMap<String, ProxyConfig.ClusterSpec>();
        for (int i = 0; i < clusters.size(); i++) {
            Cluster c = clusters.get(i);
            String where = "Cluster '" + (c.getName().isEmpty() ? "#" + i : c.getName()) + "'";
            if (c.getName().isEmpty()) {
                errors.add(where + ": name: is empty");
                continue;
            }
            if (outClusters.containsKey(c.getName())) {
                errors.add(where + ": name: a cluster of this name is already defined");
                continue;
            }
            cluster(c, where, byName, errors).ifPresent(spec -> outClusters.put(spec.name(), spec));
        }
        var outListeners = new ArrayList<ProxyConfig.ListenerSpec>();
        var listenerNames = new java.util.HashSet<String>();
        for (int i = 0; i < listeners.size(); i++) {
            Listener l = listeners.get(i);
            String where = "Listener '" + (l.getName().isEmpty() ? "#" + i : l.getName()) + "'";
            if (l.getName().isEmpty()) {
                errors.add(where + ": name: is empty");
                continue;
            }
            if (!listenerNames.add(l.getName())) {
                errors.add(where + ": name: a listener of this name is already defined");
                continue;
            }
            listener(l, where, outClusters, errors).ifPresent(outListeners::add);
        }
        if (!errors.isEmpty()) {
            throw new ConfigException(errors);
        }
        return new ProxyConfig(version, outListeners, outClusters);
    }

    private static Optional<ProxyConfig.ListenerSpec> listener(Listener l, String where, Map<String, ProxyConfig.ClusterSpec> clusters,
            List<String> errors) {
        var address = socketAddress(l.getAddress(), where, "address.socket_address", errors);
        boolean plaintextToo = false;
        if (l.getFilterChainsCount() == 2) {
            // PERMISSIVE: a chain for TLS and one for plaintext, told apart by the tls_inspector, with the same filters
            var tlsChain = l.getFilterChains(0);
            var rawChain = l.getFilterChains(1);
            String problem = null;
            if (!tlsChain.getFilterChainMatch().getTransportProtocol().equals("tls") || !tlsChain.hasTransportSocket()) {
                problem = "filter_chains[0]: with two chains, the first must match transport_protocol 'tls' and carry the TLS transport_socket";
            } else if (!rawChain.getFilterChainMatch().getTransportProtocol().equals("raw_buffer") || rawChain.hasTransportSocket()) {
                problem = "filter_chains[1]: with two chains, the second must match transport_protocol 'raw_buffer' without a transport_socket";
            } else if (!tlsChain.getFiltersList().equals(rawChain.getFiltersList())) {
                problem = "filter_chains[1].filters: must be the same as filter_chains[0].filters (one listener served with and without TLS)";
            } else if (l.getListenerFiltersList().stream().noneMatch(f -> f.getName().equals("envoy.filters.listener.tls_inspector"))) {
                problem = "listener_filters: the tls_inspector (envoy.filters.listener.tls_inspector) is needed to tell TLS from plaintext";
            } else if (!tlsChain.getFilters(0).getTypedConfig().getTypeUrl().equals(HTTP_CONNECTION_MANAGER)) {
                problem = "filter_chains: TLS and plaintext on one listener are supported for HTTP listeners only";
            }
            if (problem != null) {
                errors.add(where + ": " + problem);
                return Optional.empty();
            }
            plaintextToo = true;
        } else if (l.getFilterChainsCount() != 1) {
            errors.add(where + ": filter_chains: one filter chain is supported (or two: TLS and plaintext), found " + l.getFilterChainsCount());
            return Optional.empty();
        }
        var chain = l.getFilterChains(0);
        if (chain.getFiltersCount() != 1) {
            errors.add(where + ": filter_chains[0].filters: exactly one network filter (tcp_proxy) is supported, found " + chain.getFiltersCount());
            return Optional.empty();
        }
        var filter = chain.getFilters(0);
        Any config = filter.getTypedConfig();
        String field = where + ": filter_chains[0].filters[0]";
        boolean mtls = false;
        if (chain.hasTransportSocket()) {
            Any tls = chain.getTransportSocket().getTypedConfig();
            if (!tls.getTypeUrl().equals(DOWNSTREAM_TLS)) {
                errors.add(where + ": filter_chains[0].transport_socket.typed_config: '" + tls.getTypeUrl() + "' is not supported; use a DownstreamTlsContext");
                return Optional.empty();
            }
            try {
                var ctx = unpack(tls, DOWNSTREAM_TLS, DownstreamTlsContext.parser());
                if (!ctx.getRequireClientCertificate().getValue()) {
                    errors.add(where + ": filter_chains[0].transport_socket.typed_config.require_client_certificate: must be true (mTLS only)");
                    return Optional.empty();
                }
                mtls = true;
            } catch (InvalidProtocolBufferException e) {
                errors.add(where + ": filter_chains[0].transport_socket.typed_config: unreadable DownstreamTlsContext: " + e.getMessage());
                return Optional.empty();
            }
        }
        boolean listenerMtls = mtls;
        boolean listenerPlaintextToo = plaintextToo;
        if (config.getTypeUrl().equals(HTTP_CONNECTION_MANAGER)) {
            try {
                var http = httpSpec(unpack(config, HTTP_CONNECTION_MANAGER, HttpConnectionManager.parser()), field + ".typed_config", clusters, errors);
                return address.flatMap(a -> http.map(h -> new ProxyConfig.ListenerSpec(l.getName(), a, "", Optional.of(h), listenerMtls,
                        listenerPlaintextToo)));
            } catch (InvalidProtocolBufferException e) {
                errors.add(field + ".typed_config: unreadable HttpConnectionManager: " + e.getMessage());
                return Optional.empty();
            }
        }
        if (!config.getTypeUrl().equals(TCP_PROXY)) {
            errors.add(field + ".typed_config: '" + config.getTypeUrl() + "' is not supported; use " + TCP_PROXY);
            return Optional.empty();
        }
        TcpProxy tcp;
        try {
            tcp = unpack(config, TCP_PROXY, TcpProxy.parser());
        } catch (InvalidProtocolBufferException e) {
            errors.add(field + ".typed_config: unreadable TcpProxy: " + e.getMessage());
            return Optional.empty();
        }
        if (tcp.hasWeightedClusters()) {
            errors.add(field + ".typed_config.weighted_clusters: weighted TCP clusters are not supported yet; name one cluster");
            return Optional.empty();
        }
        if (tcp.getCluster().isEmpty()) {
            errors.add(field + ".typed_config.cluster: is empty");
            return Optional.empty();
        }
        if (!clusters.containsKey(tcp.getCluster())) {
            errors.add(field + ".typed_config.cluster: no cluster named '" + tcp.getCluster() + "' (or it was refused)");
            return Optional.empty();
        }
        return address.map(a -> new ProxyConfig.ListenerSpec(l.getName(), a, tcp.getCluster(), Optional.empty(), listenerMtls));
    }

    private static Optional<ProxyConfig.HttpSpec> httpSpec(HttpConnectionManager hcm, String where, Map<String, ProxyConfig.ClusterSpec> clusters,
            List<String> errors) {
        int before = errors.size();
        if (hcm.hasRds()) {
            errors.add(where + ".rds: RDS is not supported yet; give the route_config inline");
            return Optional.empty();
        }
        if (!hcm.hasRouteConfig()) {
            errors.add(where + ".route_config: is missing");
            return Optional.empty();
        }
        Optional<ProxyConfig.Rbac> rbac = Optional.empty();
        for (int i = 0; i < hcm.getHttpFiltersCount(); i++) {
            var f = hcm.getHttpFilters(i);
            boolean router = f.getName().equals("envoy.filters.http.router")
                    || f.getTypedConfig().getTypeUrl().equals(ROUTER);
            boolean isRbac = f.getTypedConfig().getTypeUrl().equals(RBAC);
            if (isRbac) {
                try {
                    // Several RBAC filters run in order, each able to refuse (Istio's DENY policies, then ALLOW ones).
                    var chain = rbac;
                    var filter = rbac(unpack(f.getTypedConfig(), RBAC, dev.isthmus.xds.envoy.extensions.filters.http.rbac.v3.RBAC.parser()),
                            where + ".http_filters[" + i + "].typed_config", errors);
                    rbac = chain.isEmpty() ? filter : filter.map(x -> chain.get().andThen(x)).or(() -> chain);
                } catch (InvalidProtocolBufferException e) {
                    errors.add(where + ".http_filters[" + i + "].typed_config: unreadable RBAC: " + e.getMessage());
                }
            } else if (!router) {
                errors.add(where + ".http_filters[" + i + "]: '" + f.getName() + "' is not supported; only envoy.filters.http.rbac and the router");
            }
        }
        var rc = hcm.getRouteConfig();
        var hosts = new ArrayList<ProxyConfig.VirtualHost>();
        for (int v = 0; v < rc.getVirtualHostsCount(); v++) {
            var vh = rc.getVirtualHosts(v);
            String vpath = where + ".route_config.virtual_hosts[" + v + "]";
            if (vh.getDomainsCount() == 0) {
                errors.add(vpath + ".domains: is empty");
            }
            var routes = new ArrayList<ProxyConfig.Route>();
            for (int r = 0; r < vh.getRoutesCount(); r++) {
                var route = vh.getRoutes(r);
                String rpath = vpath + ".routes[" + r + "]";
                var match = route.getMatch();
                String prefix = null;
                String exact = null;
                java.util.regex.Pattern regex = null;
                switch (match.getPathSpecifierCase()) {
                    case PREFIX -> prefix = match.getPrefix();
                    case PATH -> exact = match.getPath();
                    case SAFE_REGEX -> {
                        try {
                            regex = java.util.regex.Pattern.compile(match.getSafeRegex().getRegex());
                        } catch (java.util.regex.PatternSyntaxException e) {
                            errors.add(rpath + ".match.safe_regex.regex: not a valid regular expression: " + e.getDescription());
                        }
                    }
                    default -> errors.add(rpath + ".match: " + match.getPathSpecifierCase() + " is not supported yet; use prefix, path or safe_regex");
                }
                if (match.getQueryParametersCount() > 0) {
                    errors.add(rpath + ".match.query_parameters: query parameter matchers are not supported yet");
                }
                var headerMatches = new ArrayList<ProxyConfig.HeaderMatch>();
                for (int h = 0; h < match.getHeadersCount(); h++) {
                    var hm = match.getHeaders(h);
                    String hpath = rpath + ".match.headers[" + h + "]";
                    if (hm.getInvertMatch()) {
                        errors.add(hpath + ".invert_match: is not supported yet");
                    }
                    String name = hm.getName().toLowerCase(java.util.Locale.ROOT);
                    if (name.isEmpty()) {
                        errors.add(hpath + ".name: is empty");
                    }
                    switch (hm.getHeaderMatchSpecifierCase()) {
                        case PRESENT_MATCH -> headerMatches.add(new ProxyConfig.HeaderMatch(name, null));
                        case EXACT_MATCH -> headerMatches.add(new ProxyConfig.HeaderMatch(name, hm.getExactMatch()));
                        case STRING_MATCH -> {
                            if (hm.getStringMatch().getMatchPatternCase() == dev.isthmus.xds.envoy.type.matcher.v3.StringMatcher.MatchPatternCase.EXACT
                                    && !hm.getStringMatch().getIgnoreCase()) {
                                headerMatches.add(new ProxyConfig.HeaderMatch(name, hm.getStringMatch().getExact()));
                            } else {
                                errors.add(hpath + ".string_match: only a case-sensitive exact match is supported");
                            }
                        }
                        default -> errors.add(hpath + ": " + hm.getHeaderMatchSpecifierCase()
                                + " is not supported; use present_match, exact_match or string_match.exact");
                    }
                }
                if (!route.hasRoute()) {
                    errors.add(rpath + ": only 'route' actions are supported (not redirect or direct_response)");
                    continue;
                }
                var action = route.getRoute();
                var targets = new ArrayList<ProxyConfig.WeightedCluster>();
                if (action.hasWeightedClusters()) {
                    var wc = action.getWeightedClusters();
                    for (int c = 0; c < wc.getClustersCount(); c++) {
                        var w = wc.getClusters(c);
                        int weight = w.hasWeight() ? w.getWeight().getValue() : 0;
                        if (weight < 0) {
                            errors.add(rpath + ".route.weighted_clusters.clusters[" + c + "].weight: negative");
                        }
                        targets.add(new ProxyConfig.WeightedCluster(w.getName(), weight));
                    }
                    if (targets.stream().mapToInt(ProxyConfig.WeightedCluster::weight).sum() <= 0) {
                        errors.add(rpath + ".route.weighted_clusters: the weights add up to nothing");
                    }
                } else if (!action.getCluster().isEmpty()) {
                    targets.add(new ProxyConfig.WeightedCluster(action.getCluster(), 1));
                } else {
                    errors.add(rpath + ".route: needs cluster or weighted_clusters");
                }
                for (int c = 0; c < targets.size(); c++) {
                    if (!clusters.containsKey(targets.get(c).cluster())) {
                        errors.add(rpath + ".route" + (action.hasWeightedClusters() ? ".weighted_clusters.clusters[" + c + "].name" : ".cluster")
                                + ": no cluster named '" + targets.get(c).cluster() + "' (or it was refused)");
                    }
                }
                Duration timeout = action.hasTimeout() ? duration(action.getTimeout())
                        : Duration.ofSeconds(15);
                var retry = ProxyConfig.RetrySpec.NONE;
                if (action.hasRetryPolicy()) {
                    var rp = action.getRetryPolicy();
                    var on = new java.util.LinkedHashSet<String>();
                    for (String cond : rp.getRetryOn().split(",")) {
                        String c = cond.strip();
                        if (c.isEmpty()) {
                            continue;
                        }
                        if (!ProxyConfig.RetrySpec.CONDITIONS.contains(c)) {
                            errors.add(rpath + ".route.retry_policy.retry_on: '" + c + "' is not supported (" + String.join(", ",
                                    ProxyConfig.RetrySpec.CONDITIONS) + ")");
                        }
                        on.add(c);
                    }
                    retry = new ProxyConfig.RetrySpec(on, rp.hasNumRetries() ? rp.getNumRetries().getValue() : 1);
                }
                routes.add(new ProxyConfig.Route(prefix, exact, regex, headerMatches, targets, timeout, retry));
            }
            hosts.add(new ProxyConfig.VirtualHost(vh.getName(), vh.getDomainsList(), routes));
        }
        return errors.size() > before ? Optional.empty() : Optional.of(new ProxyConfig.HttpSpec(rc.getName(), hosts, rbac));
    }

    /**
     * The RBAC filter's rules: action ALLOW or DENY; each policy's permissions ({@code any}, a
     * {@code header} {@code :method} exact match, {@code url_path.path} exact or prefix, or
     * {@code and_rules} of those) and principals ({@code any}, {@code authenticated.principal_name}
     * exact or prefix: the caller's SPIFFE ID). Anything else is refused with its path.
     */
    private static Optional<ProxyConfig.Rbac> rbac(dev.isthmus.xds.envoy.extensions.filters.http.rbac.v3.RBAC filter, String where, List<String> errors) {
        int before = errors.size();
        if (!filter.hasRules()) {
            return Optional.empty(); // no rules: the filter lets everything through
        }
        var rules = filter.getRules();
        boolean allow = switch (rules.getAction()) {
            case ALLOW -> true;
            case DENY -> false;
            default -> {
                errors.add(where + ".rules.action: " + rules.getAction() + " is not supported; use ALLOW or DENY");
                yield true;
            }
        };
        var policies = new ArrayList<ProxyConfig.RbacPolicy>();
        for (var e : new java.util.TreeMap<>(rules.getPoliciesMap()).entrySet()) {
            String p = where + ".rules.policies[\"" + e.getKey() + "\"]";
            var permissions = new ArrayList<ProxyConfig.Permission>();
            for (int i = 0; i < e.getValue().getPermissionsCount(); i++) {
                permission(e.getValue().getPermissions(i), p + ".permissions[" + i + "]", errors).ifPresent(permissions::add);
            }
            var principals = new ArrayList<ProxyConfig.Principal>();
            for (int i = 0; i < e.getValue().getPrincipalsCount(); i++) {
                var pr = e.getValue().getPrincipals(i);
                String pp = p + ".principals[" + i + "]";
                if (pr.hasAny()) {
                    principals.add(new ProxyConfig.Principal(null, null));
                } else if (pr.hasAuthenticated() && pr.getAuthenticated().hasPrincipalName()) {
                    var m = pr.getAuthenticated().getPrincipalName();
                    switch (m.getMatchPatternCase()) {
                        case EXACT -> principals.add(new ProxyConfig.Principal(m.getExact(), null));
                        case PREFIX -> principals.add(new ProxyConfig.Principal(null, m.getPrefix()));
                        default -> errors.add(pp + ".authenticated.principal_name: only exact or prefix is supported");
                    }
                } else {
                    errors.add(pp + ": only any or authenticated.principal_name is supported");
                }
            }
            policies.add(new ProxyConfig.RbacPolicy(e.getKey(), permissions, principals));
        }
        return errors.size() > before ? Optional.empty() : Optional.of(new ProxyConfig.Rbac(allow, policies));
    }

    private static Optional<ProxyConfig.Permission> permission(dev.isthmus.xds.envoy.config.rbac.v3.Permission p, String where, List<String> errors) {
        String method = null;
        String exact = null;
        String prefix = null;
        var parts = p.hasAndRules() ? p.getAndRules().getRulesList() : List.of(p);
        for (int i = 0; i < parts.size(); i++) {
            var part = parts.get(i);
            String w = p.hasAndRules() ? where + ".and_rules.rules[" + i + "]" : where;
            if (part.hasAny()) {
                continue;
            }
            if (part.hasHeader() && part.getHeader().getName().equals(":method") && part.getHeader().hasStringMatch()
                    && part.getHeader().getStringMatch().getMatchPatternCase() == dev.isthmus.xds.envoy.type.matcher.v3.StringMatcher.MatchPatternCase.EXACT) {
                method = part.getHeader().getStringMatch().getExact();
            } else if (part.hasUrlPath() && part.getUrlPath().hasPath()) {
                var m = part.getUrlPath().getPath();
                switch (m.getMatchPatternCase()) {
                    case EXACT -> exact = m.getExact();
                    case PREFIX -> prefix = m.getPrefix();
                    default -> {
                        errors.add(w + ".url_path.path: only exact or prefix is supported");
                        return Optional.empty();
                    }
                }
            } else {
                errors.add(w + ": only any, header ':method' (string_match exact), url_path.path (exact or prefix) and and_rules of them are supported");
                return Optional.empty();
            }
        }
        return Optional.of(new ProxyConfig.Permission(method, exact, prefix));
    }

    private static Optional<ProxyConfig.ClusterSpec> cluster(Cluster c, String where, Map<String, ClusterLoadAssignment> assignments,
            List<String> errors) {
        int before = errors.size();
        ClusterLoadAssignment assignment;
        switch (c.getType()) {
            case STATIC -> assignment = c.getLoadAssignment();
            case EDS -> {
                String service = c.getEdsClusterConfig().getServiceName().isEmpty() ? c.getName() : c.getEdsClusterConfig().getServiceName();
                assignment = assignments.getOrDefault(service, c.getLoadAssignment());
            }
            default -> {
                errors.add(where + ": type: " + c.getType() + " is not supported; use STATIC or EDS");
                return Optional.empty();
            }
        }
        ProxyConfig.LbPolicy lb = switch (c.getLbPolicy()) {
            case ROUND_ROBIN -> ProxyConfig.LbPolicy.ROUND_ROBIN;
            case LEAST_REQUEST -> ProxyConfig.LbPolicy.LEAST_REQUEST;
            default -> {
                errors.add(where + ": lb_policy: " + c.getLbPolicy() + " is not supported; use ROUND_ROBIN or LEAST_REQUEST");
                yield null;
            }
        };
        Duration connectTimeout = c.hasConnectTimeout()
                ? duration(c.getConnectTimeout()) : Duration.ofSeconds(5);
        if (connectTimeout.isZero() || connectTimeout.isNegative()) {
            errors.add(where + ": connect_timeout: must be positive");
        }
        boolean mtls = false;
        var ids = new ArrayList<String>();
        Optional<String> sni = Optional.empty();
        if (c.hasTransportSocket()) {
            Any tls = c.getTransportSocket().getTypedConfig();
            if (!tls.getTypeUrl().equals(UPSTREAM_TLS)) {
                errors.add(where + ": transport_socket.typed_config: '" + tls.getTypeUrl() + "' is not supported; use " + UPSTREAM_TLS);
            } else {
                try {
                    UpstreamTlsContext ctx = unpack(tls, UPSTREAM_TLS, UpstreamTlsContext.parser());
                    mtls = true;
                    if (!ctx.getSni().isEmpty()) {
                        sni = Optional.of(ctx.getSni());
                    }
                    var common = ctx.getCommonTlsContext();
                    var matchers = common.hasCombinedValidationContext()
                            ? common.getCombinedValidationContext().getDefaultValidationContext().getMatchTypedSubjectAltNamesList()
                            : common.getValidationContext().getMatchTypedSubjectAltNamesList();
                    String base = where + ": transport_socket.typed_config.common_tls_context."
                            + (common.hasCombinedValidationContext() ? "combined_validation_context.default_validation_context" : "validation_context")
                            + ".match_typed_subject_alt_names";
                    for (int i = 0; i < matchers.size(); i++) {
                        SubjectAltNameMatcher m = matchers.get(i);
                        if (m.getSanType() != SubjectAltNameMatcher.SanType.URI
                                || m.getMatcher().getMatchPatternCase() != dev.isthmus.xds.envoy.type.matcher.v3.StringMatcher.MatchPatternCase.EXACT) {
                            errors.add(base + "[" + i + "]: only san_type URI with an exact matcher (a SPIFFE ID) is supported");
                        } else if (!m.getMatcher().getExact().startsWith("spiffe://")) {
                            errors.add(base + "[" + i + "].matcher.exact: '" + m.getMatcher().getExact() + "' is not a SPIFFE ID");
                        } else {
                            ids.add(m.getMatcher().getExact());
                        }
                    }
                } catch (InvalidProtocolBufferException e) {
                    errors.add(where + ": transport_socket.typed_config: unreadable UpstreamTlsContext: " + e.getMessage());
                }
            }
        }
        var endpoints = new ArrayList<ProxyConfig.EndpointSpec>();
        String cla = c.getType() == Cluster.DiscoveryType.STATIC ? "load_assignment" : "ClusterLoadAssignment";
        for (int i = 0; i < assignment.getEndpointsCount(); i++) {
            var group = assignment.getEndpoints(i);
            var loc = group.hasLocality()
                    ? new ProxyConfig.Locality(group.getLocality().getRegion(), group.getLocality().getZone(), group.getLocality().getSubZone())
                    : ProxyConfig.Locality.NONE;
            if (group.getPriority() > 127) {
                errors.add(where + ": " + cla + ".endpoints[" + i + "].priority: " + group.getPriority() + " is above 127");
            }
            for (int j = 0; j < group.getLbEndpointsCount(); j++) {
                var lbe = group.getLbEndpoints(j);
                String path = cla + ".endpoints[" + i + "].lb_endpoints[" + j + "]";
                if (!lbe.hasEndpoint()) {
                    errors.add(where + ": " + path + ".endpoint: is missing (named endpoints are not supported)");
                    continue;
                }
                int weight = lbe.hasLoadBalancingWeight() ? lbe.getLoadBalancingWeight().getValue() : 1;
                if (weight < 1) {
                    errors.add(where + ": " + path + ".load_balancing_weight: must be at least 1");
                }
                boolean healthy = lbe.getHealthStatus() == HealthStatus.UNKNOWN || lbe.getHealthStatus() == HealthStatus.HEALTHY
                        || lbe.getHealthStatus() == HealthStatus.DEGRADED;
                socketAddress(lbe.getEndpoint().getAddress(), where, path + ".endpoint.address.socket_address", errors)
                        .ifPresent(a -> endpoints.add(new ProxyConfig.EndpointSpec(a, loc, group.getPriority(), weight, healthy)));
            }
        }
        int overprovisioning = assignment.getPolicy().hasOverprovisioningFactor() ? assignment.getPolicy().getOverprovisioningFactor().getValue() : 140;
        if (overprovisioning < 100) {
            errors.add(where + ": " + cla + ".policy.overprovisioning_factor: " + overprovisioning + " is below 100");
        }
        var drops = new ArrayList<ProxyConfig.DropOverload>();
        for (int i = 0; i < assignment.getPolicy().getDropOverloadsCount(); i++) {
            var d = assignment.getPolicy().getDropOverloads(i);
            String path = where + ": " + cla + ".policy.drop_overloads[" + i + "]";
            if (d.getCategory().isEmpty()) {
                errors.add(path + ".category: is empty");
            }
            if (!d.hasDropPercentage()) {
                errors.add(path + ".drop_percentage: is missing");
                continue;
            }
            double denominator = switch (d.getDropPercentage().getDenominator()) {
                case HUNDRED -> 100;
                case TEN_THOUSAND -> 10_000;
                case MILLION -> 1_000_000;
                default -> 0;
            };
            if (denominator == 0) {
                errors.add(path + ".drop_percentage.denominator: " + d.getDropPercentage().getDenominatorValue() + " is not HUNDRED, TEN_THOUSAND or MILLION");
                continue;
            }
            // Envoy: a numerator above the denominator means 100%
            drops.add(new ProxyConfig.DropOverload(d.getCategory(), Math.min(1.0, d.getDropPercentage().getNumerator() / denominator)));
        }
        var limits = ProxyConfig.Limits.DEFAULT;
        for (int i = 0; i < c.getCircuitBreakers().getThresholdsCount(); i++) {
            var t = c.getCircuitBreakers().getThresholds(i);
            if (t.getPriority() != dev.isthmus.xds.envoy.config.core.v3.RoutingPriority.DEFAULT) {
                continue; // HIGH priority traffic does not exist here
            }
            limits = new ProxyConfig.Limits(t.hasMaxConnections() ? t.getMaxConnections().getValue() : limits.maxConnections(),
                    t.hasMaxRequests() ? t.getMaxRequests().getValue() : limits.maxRequests(),
                    t.hasMaxRetries() ? t.getMaxRetries().getValue() : limits.maxRetries(),
                    t.hasRetryBudget() ? (t.getRetryBudget().hasBudgetPercent() ? t.getRetryBudget().getBudgetPercent().getValue() : 20.0) : -1,
                    t.hasRetryBudget() && t.getRetryBudget().hasMinRetryConcurrency() ? t.getRetryBudget().getMinRetryConcurrency().getValue() : 3);
        }
        var outlier = ProxyConfig.Outlier.DEFAULT;
        if (c.hasOutlierDetection()) {
            var od = c.getOutlierDetection();
            var base = od.hasBaseEjectionTime() ? duration(od.getBaseEjectionTime()) : ProxyConfig.Outlier.DEFAULT.baseEjection();
            outlier = new ProxyConfig.Outlier(od.hasConsecutive5Xx() ? od.getConsecutive5Xx().getValue() : 5, base,
                    od.hasMaxEjectionPercent() ? od.getMaxEjectionPercent().getValue() : 10,
                    od.hasInterval() ? duration(od.getInterval()) : ProxyConfig.Outlier.DEFAULT.interval(),
                    // Envoy: max_ejection_time defaults to 300 s, or to base_ejection_time when that is longer
                    od.hasMaxEjectionTime() ? duration(od.getMaxEjectionTime())
                            : base.compareTo(ProxyConfig.Outlier.DEFAULT.maxEjection()) > 0 ? base : ProxyConfig.Outlier.DEFAULT.maxEjection());
            if (outlier.consecutiveFailures() < 1) {
                errors.add(where + ": outlier_detection.consecutive_5xx: must be at least 1");
            }
            if (!outlier.baseEjection().isPositive()) {
                errors.add(where + ": outlier_detection.base_ejection_time: must be more than 0");
            }
            if (!outlier.interval().isPositive()) {
                errors.add(where + ": outlier_detection.interval: must be more than 0");
            }
            if (outlier.maxEjection().compareTo(outlier.baseEjection()) < 0) {
                errors.add(where + ": outlier_detection.max_ejection_time: " + outlier.maxEjection().toMillis()
                        + " ms is less than base_ejection_time (" + outlier.baseEjection().toMillis() + " ms)");
            }
        }
        boolean http2 = false;
        String protocolKey = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";
        if (c.getTypedExtensionProtocolOptionsMap().containsKey(protocolKey)) {
            try {
                var options = unpack(c.getTypedExtensionProtocolOptionsMap().get(protocolKey), HTTP_PROTOCOL_OPTIONS,
                        dev.isthmus.xds.envoy.extensions.upstreams.http.v3.HttpProtocolOptions.parser());
                http2 = options.hasExplicitHttpConfig() && options.getExplicitHttpConfig().hasHttp2ProtocolOptions();
                if (!options.hasExplicitHttpConfig()) {
                    errors.add(where + ": typed_extension_protocol_options." + protocolKey + ": only explicit_http_config is supported");
                }
            } catch (InvalidProtocolBufferException e) {
                errors.add(where + ": typed_extension_protocol_options." + protocolKey + ": unreadable: " + e.getMessage());
            }
        }
        if (errors.size() > before) {
            return Optional.empty();
        }
        return Optional.of(new ProxyConfig.ClusterSpec(c.getName(), lb, connectTimeout, mtls, ids, sni, endpoints, overprovisioning, limits, outlier,
                http2, drops));
    }

    private static Optional<InetSocketAddress> socketAddress(Address address, String where, String path, List<String> errors) {
        if (!address.hasSocketAddress()) {
            errors.add(where + ": " + path + ": is missing");
            return Optional.empty();
        }
        var sa = address.getSocketAddress();
        if (sa.getAddress().isEmpty()) {
            errors.add(where + ": " + path + ".address: is empty");
            return Optional.empty();
        }
        if (!sa.getAddress().matches("[0-9a-fA-F.:]+")) {
            errors.add(where + ": " + path + ".address: '" + sa.getAddress() + "' is not an IP address (DNS names need a DNS cluster type)");
            return Optional.empty();
        }
        int port = sa.getPortValue();
        if (port < 1 || port > 65535) {
            errors.add(where + ": " + path + ".port_value: " + port + " is not a port (1-65535)");
            return Optional.empty();
        }
        return Optional.of(new InetSocketAddress(sa.getAddress(), port));
    }

    private static Duration duration(dev.isthmus.xds.google.protobuf.Duration d) {
        return Duration.ofSeconds(d.getSeconds(), d.getNanos());
    }

    /** An Any's message, when its type is {@code typeUrl}'s (compared by the name after the last '/', as protobuf's own unpack does). */
    static <T> T unpack(Any any, String typeUrl, Parser<T> parser) throws InvalidProtocolBufferException {
        String name = any.getTypeUrl().substring(any.getTypeUrl().lastIndexOf('/') + 1);
        if (!name.equals(typeUrl.substring(typeUrl.lastIndexOf('/') + 1))) {
            throw new InvalidProtocolBufferException("Type of the Any message does not match: " + any.getTypeUrl() + " is not " + typeUrl);
        }
        return parser.parseFrom(any.getValue());
    }
}
