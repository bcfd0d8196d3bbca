package dev.isthmus.proxy.config.xds;

import com.google.protobuf.Descriptors.Descriptor;
import com.google.protobuf.Descriptors.EnumDescriptor;
import com.google.protobuf.Descriptors.FieldDescriptor;
import com.google.protobuf.Descriptors.GenericDescriptor;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;

/**
 * Writes the proxies' own xDS protos ({@code proxy-core/src/main/proto/xds/**}): Envoy's v3 messages
 * cut down to the fields the proxies honour (docs/xds.md), with Envoy's full names, field numbers and
 * types, read here from Envoy's generated descriptors (java-control-plane's api, in test scope only).
 *
 * <p>Why: Envoy's generated classes and their descriptors (all of each file's messages and imports,
 * the validation annotations) were about a fifth of a sidecar's resident memory for a few dozen
 * fields. The cut-down messages read the same bytes: a field they do not know is kept as an unknown
 * field (so the last good config written to disk is the whole resource), and the bootstrap's JSON is
 * refused where it names a field that is not honoured.
 *
 * <p>A message the list below names but gives no fields is written empty. That keeps a oneof's cases
 * (a route's {@code redirect} is still told apart from a missing {@code route}) without the fields
 * under them. {@code HonouredProtosTest} fails when the protos in the tree differ from what this
 * writes; run {@link #main} to write them again.
 */
public final class HonouredProtos {

    /**
     * Each line: a message's full name, then the fields honoured (or {@code *}: none of them; the
     * message stays empty). Two are known but not read, as docs/xds.md says, so that a bootstrap may
     * give them: {@code max_pending_requests} and {@code alpn_protocols}.
     */
    static final String HONOURED = """
            envoy.config.bootstrap.v3.Bootstrap: node static_resources
            envoy.config.bootstrap.v3.Bootstrap.StaticResources: listeners clusters
            envoy.config.core.v3.Node: id cluster metadata locality
            envoy.config.core.v3.Locality: region zone sub_zone
            envoy.config.core.v3.Address: socket_address
            envoy.config.core.v3.SocketAddress: protocol address port_value named_port
            envoy.config.core.v3.TransportSocket: name typed_config
            envoy.config.core.v3.ConfigSource: *
            envoy.config.core.v3.Http1ProtocolOptions: *
            envoy.config.core.v3.Http2ProtocolOptions: *
            envoy.config.listener.v3.Listener: name address filter_chains listener_filters
            envoy.config.listener.v3.FilterChain: filter_chain_match filters transport_socket name
            envoy.config.listener.v3.FilterChainMatch: transport_protocol
            envoy.config.listener.v3.Filter: name typed_config
            envoy.config.listener.v3.ListenerFilter: name typed_config
            envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector: *
            envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy: stat_prefix cluster weighted_clusters
            envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy.WeightedCluster: *
            envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager: stat_prefix rds route_config http_filters
            envoy.extensions.filters.network.http_connection_manager.v3.Rds: *
            envoy.extensions.filters.network.http_connection_manager.v3.HttpFilter: name typed_config
            envoy.extensions.filters.http.router.v3.Router: *
            envoy.extensions.filters.http.rbac.v3.RBAC: rules
            envoy.config.rbac.v3.RBAC: action policies
            envoy.config.rbac.v3.Policy: permissions principals
            envoy.config.rbac.v3.Permission: and_rules any header url_path
            envoy.config.rbac.v3.Permission.Set: rules
            envoy.config.rbac.v3.Principal: any authenticated
            envoy.config.rbac.v3.Principal.Authenticated: principal_name
            envoy.type.matcher.v3.PathMatcher: path
            envoy.type.matcher.v3.StringMatcher: exact prefix suffix safe_regex contains ignore_case
            envoy.type.matcher.v3.RegexMatcher: regex
            envoy.config.route.v3.RouteConfiguration: name virtual_hosts
            envoy.config.route.v3.VirtualHost: name domains routes
            envoy.config.route.v3.Route: name match route redirect direct_response
            envoy.config.route.v3.RedirectAction: *
            envoy.config.route.v3.DirectResponseAction: *
            envoy.config.route.v3.RouteMatch: prefix path safe_regex connect_matcher path_separated_prefix path_match_policy headers query_parameters
            envoy.config.route.v3.RouteMatch.ConnectMatcher: *
            envoy.config.core.v3.TypedExtensionConfig: *
            envoy.config.route.v3.QueryParameterMatcher: *
            envoy.config.route.v3.HeaderMatcher: name exact_match safe_regex_match range_match present_match prefix_match suffix_match contains_match string_match invert_match
            envoy.type.v3.Int64Range: *
            envoy.config.route.v3.RouteAction: cluster cluster_header weighted_clusters timeout retry_policy
            envoy.config.route.v3.WeightedCluster: clusters
            envoy.config.route.v3.WeightedCluster.ClusterWeight: name weight
            envoy.config.route.v3.RetryPolicy: retry_on num_retries
            envoy.config.cluster.v3.Cluster: name type eds_cluster_config connect_timeout lb_policy load_assignment transport_socket circuit_breakers outlier_detection typed_extension_protocol_options
            envoy.config.cluster.v3.Cluster.EdsClusterConfig: eds_config service_name
            envoy.config.cluster.v3.CircuitBreakers: thresholds
            envoy.config.cluster.v3.CircuitBreakers.Thresholds: priority max_connections max_pending_requests max_requests max_retries retry_budget
            envoy.config.cluster.v3.CircuitBreakers.Thresholds.RetryBudget: budget_percent min_retry_concurrency
            envoy.type.v3.Percent: value
            envoy.config.cluster.v3.OutlierDetection: consecutive_5xx interval base_ejection_time max_ejection_percent max_ejection_time
            envoy.config.endpoint.v3.ClusterLoadAssignment: cluster_name endpoints policy
            envoy.config.endpoint.v3.ClusterLoadAssignment.Policy: drop_overloads overprovisioning_factor
            envoy.config.endpoint.v3.ClusterLoadAssignment.Policy.DropOverload: category drop_percentage
            envoy.type.v3.FractionalPercent: numerator denominator
            envoy.config.endpoint.v3.LocalityLbEndpoints: locality lb_endpoints priority
            envoy.config.endpoint.v3.LbEndpoint: endpoint health_status load_balancing_weight
            envoy.config.endpoint.v3.Endpoint: address
            envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext: common_tls_context sni
            envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext: common_tls_context require_client_certificate
            envoy.extensions.transport_sockets.tls.v3.CommonTlsContext: alpn_protocols validation_context combined_validation_context
            envoy.extensions.transport_sockets.tls.v3.CommonTlsContext.CombinedCertificateValidationContext: default_validation_context
            envoy.extensions.transport_sockets.tls.v3.CertificateValidationContext: match_typed_subject_alt_names
            envoy.extensions.transport_sockets.tls.v3.SubjectAltNameMatcher: san_type matcher
            envoy.extensions.upstreams.http.v3.HttpProtocolOptions: explicit_http_config
            envoy.extensions.upstreams.http.v3.HttpProtocolOptions.ExplicitHttpConfig: http_protocol_options http2_protocol_options
            envoy.service.discovery.v3.DiscoveryRequest: version_info node resource_names type_url response_nonce error_detail
            envoy.service.discovery.v3.DiscoveryResponse: version_info resources type_url nonce
            """;

    /** The messages the protos start from: every type the list names is reached from one of them. */
    static final List<Descriptor> ROOTS = List.of(
            io.envoyproxy.envoy.config.bootstrap.v3.Bootstrap.getDescriptor(),
            io.envoyproxy.envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector.getDescriptor(),
            io.envoyproxy.envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy.getDescriptor(),
            io.envoyproxy.envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager.getDescriptor(),
            io.envoyproxy.envoy.extensions.filters.http.router.v3.Router.getDescriptor(),
            io.envoyproxy.envoy.extensions.filters.http.rbac.v3.RBAC.getDescriptor(),
            io.envoyproxy.envoy.config.endpoint.v3.ClusterLoadAssignment.getDescriptor(),
            io.envoyproxy.envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext.getDescriptor(),
            io.envoyproxy.envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext.getDescriptor(),
            io.envoyproxy.envoy.extensions.upstreams.http.v3.HttpProtocolOptions.getDescriptor(),
            io.envoyproxy.envoy.service.discovery.v3.DiscoveryRequest.getDescriptor(),
            io.envoyproxy.envoy.service.discovery.v3.DiscoveryResponse.getDescriptor());

    /** Where the generated Java classes go: Envoy's Java packages under this prefix instead of {@code io.envoyproxy}. */
    static final String JAVA_PREFIX = "dev.isthmus.xds.";

    /**
     * Isthmus's own protos that the proxies are clients of, copied whole (messages and services) as
     * lite messages into {@code dev.isthmus.lite.*}: mesh-api's classes are protobuf's full kind, which
     * the trust bridge's server keeps, and loading them would load protobuf's full runtime in every sidecar.
     */
    static final List<com.google.protobuf.Descriptors.FileDescriptor> COPIED_WHOLE = List.of(
            dev.isthmus.api.trust.v1.WorkloadCertificatesProto.getDescriptor());

    private final Map<String, List<String>> honoured = new LinkedHashMap<>();
    private final Map<String, Descriptor> messages = new TreeMap<>();
    private final Map<String, EnumDescriptor> enums = new TreeMap<>();

    HonouredProtos() {
        for (String line : HONOURED.strip().split("\n")) {
            String[] parts = line.strip().split(":\\s*", 2);
            honoured.put(parts[0], parts[1].equals("*") ? List.of() : List.of(parts[1].split("\\s+")));
        }
        for (Descriptor root : ROOTS) {
            index(root);
        }
        for (var file : COPIED_WHOLE) {
            file.getMessageTypes().forEach(this::index);
        }
        for (String name : honoured.keySet()) {
            if (!messages.containsKey(name)) {
                throw new IllegalStateException(name + ": not reached from the roots; add its root to ROOTS");
            }
        }
    }

    private void index(Descriptor d) {
        if (messages.putIfAbsent(d.getFullName(), d) != null) {
            return;
        }
        for (Descriptor n : d.getNestedTypes()) {
            index(n);
        }
        for (EnumDescriptor e : d.getEnumTypes()) {
            enums.put(e.getFullName(), e);
        }
        for (FieldDescriptor f : d.getFields()) {
            if (f.getType() == FieldDescriptor.Type.MESSAGE) {
                index(f.getMessageType());
            } else if (f.getType() == FieldDescriptor.Type.ENUM) {
                enums.put(f.getEnumType().getFullName(), f.getEnumType());
            }
        }
    }

    /** The honoured fields of a message kept in the protos; none for a message kept empty. */
    private List<FieldDescriptor> fields(Descriptor d) {
        if (d.getFullName().startsWith("google.") || d.getFullName().startsWith("isthmus.")) {
            return d.getFields().stream().sorted((a, b) -> Integer.compare(a.getNumber(), b.getNumber())).toList();
        }
        var names = honoured.getOrDefault(d.getFullName(), List.of());
        var out = new ArrayList<FieldDescriptor>();
        for (String n : names) {
            FieldDescriptor f = d.findFieldByName(n);
            if (f == null) {
                throw new IllegalStateException(d.getFullName() + " has no field " + n);
            }
            out.add(f);
        }
        out.sort((a, b) -> Integer.compare(a.getNumber(), b.getNumber()));
        return out;
    }

    /** The protos' text by file (its path under src/main/proto), one file per proto package. */
    Map<String, String> files() {
        // what is kept: the honoured messages, the types their fields name, and the parents of nested ones
        Set<String> keptMessages = new TreeSet<>();
        Set<String> keptEnums = new TreeSet<>();
        var todo = new ArrayList<>(honoured.keySet());
        for (var file : COPIED_WHOLE) {
            file.getMessageTypes().forEach(d -> todo.add(d.getFullName()));
        }
        while (!todo.isEmpty()) {
            String name = todo.remove(todo.size() - 1);
            if (!keptMessages.add(name)) {
                continue;
            }
            Descriptor d = messages.get(name);
            if (d == null) {
                throw new IllegalStateException(name + ": unknown message");
            }
            if (d.getContainingType() != null) {
                todo.add(d.getContainingType().getFullName());
            }
            for (FieldDescriptor f : fields(d)) {
                if (f.getType() == FieldDescriptor.Type.MESSAGE) {
                    if (f.isMapField()) {
                        var value = f.getMessageType().findFieldByName("value");
                        if (value.getType() == FieldDescriptor.Type.MESSAGE) {
                            todo.add(value.getMessageType().getFullName());
                        } else if (value.getType() == FieldDescriptor.Type.ENUM) {
                            keepEnum(value.getEnumType(), keptEnums, todo);
                        }
                    } else {
                        todo.add(f.getMessageType().getFullName());
                    }
                } else if (f.getType() == FieldDescriptor.Type.ENUM) {
                    keepEnum(f.getEnumType(), keptEnums, todo);
                }
            }
        }
        // by package: top-level messages and enums
        Map<String, List<GenericDescriptor>> byPackage = new TreeMap<>();
        for (String name : keptMessages) {
            Descriptor d = messages.get(name);
            if (d.getContainingType() == null) {
                byPackage.computeIfAbsent(d.getFile().getPackage(), k -> new ArrayList<>()).add(d);
            }
        }
        for (String name : keptEnums) {
            EnumDescriptor e = enums.get(name);
            if (e.getContainingType() == null) {
                byPackage.computeIfAbsent(e.getFile().getPackage(), k -> new ArrayList<>()).add(e);
            }
        }
        var out = new TreeMap<String, String>();
        for (var entry : byPackage.entrySet()) {
            String pkg = entry.getKey();
            var body = new StringBuilder();
            var imports = new TreeSet<String>();
            for (GenericDescriptor g : entry.getValue()) {
                if (g instanceof Descriptor d) {
                    message(d, "", keptMessages, keptEnums, body, imports, pkg);
                } else {
                    enumType((EnumDescriptor) g, "", body);
                }
            }
            for (var file : COPIED_WHOLE) {
                if (file.getPackage().equals(pkg)) {
                    for (var service : file.getServices()) {
                        body.append("service ").append(service.getName()).append(" {\n");
                        for (var m : service.getMethods()) {
                            body.append("  rpc ").append(m.getName()).append('(').append(m.isClientStreaming() ? "stream " : "").append('.')
                                    .append(m.getInputType().getFullName()).append(") returns (").append(m.isServerStreaming() ? "stream " : "")
                                    .append('.').append(m.getOutputType().getFullName()).append(");\n");
                        }
                        body.append("}\n");
                    }
                }
            }
            if (pkg.equals("envoy.service.discovery.v3")) {
                body.append("""
                        service AggregatedDiscoveryService {
                          rpc StreamAggregatedResources(stream DiscoveryRequest) returns (stream DiscoveryResponse);
                        }
                        """);
            }
            imports.remove(path(pkg));
            var text = new StringBuilder();
            text.append(pkg.startsWith("google.")
                    ? "// Written by HonouredProtos (proxy-core's tests): protobuf's own messages that the xDS messages use, whole,\n"
                            + "// so that the proxies' lite classes need none of protobuf's full runtime. Do not edit.\n"
                    : pkg.startsWith("isthmus.")
                    ? "// Written by HonouredProtos (proxy-core's tests) from mesh-api's protos, whole: the proxies' lite copy of the\n"
                            + "// service they are clients of. Do not edit; change mesh-api's proto.\n"
                    : "// Written by HonouredProtos (proxy-core's tests) from Envoy's v3 API: only the fields the proxies honour\n"
                            + "// (docs/xds.md), with Envoy's names, numbers and types. Do not edit: change HonouredProtos.HONOURED.\n")
                    .append("syntax = \"proto3\";\n\n")
                    .append("package ").append(pkg).append(";\n\n");
            for (String i : imports) {
                text.append("import \"").append(i).append("\";\n");
            }
            if (!imports.isEmpty()) {
                text.append('\n');
            }
            text.append("option java_package = \"").append(pkg.startsWith("isthmus.") ? "dev.isthmus.lite." + pkg.substring("isthmus.".length())
                            : JAVA_PREFIX + pkg).append("\";\n")
                    .append("option java_multiple_files = true;\n")
                    .append("option java_outer_classname = \"").append(outerClass(pkg)).append("\";\n")
                    .append("option optimize_for = LITE_RUNTIME;\n\n")
                    .append(body);
            out.put("proto/" + path(pkg), text.toString());
        }
        out.put(SCHEMA, schema(keptMessages, keptEnums));
        return out;
    }

    /**
     * The schema {@link ProtoJson} reads bootstrap JSON with, one line each: {@code M name} starts a
     * message; {@code F name jsonName number label keyType type typeName oneof} is one of its fields
     * (label {@code o}: singular, {@code p}: a singular scalar with presence, {@code r}epeated or
     * {@code m}ap; {@code -} where there is none); and
     * {@code E name VALUE=number...} is an enum.
     */
    private String schema(Set<String> keptMessages, Set<String> keptEnums) {
        var out = new StringBuilder("# Written by HonouredProtos (proxy-core's tests) with the protos under src/main/proto/xds. Do not edit.\n");
        for (String name : keptMessages) {
            Descriptor d = messages.get(name);
            out.append("M ").append(name).append('\n');
            for (FieldDescriptor f : fields(d)) {
                // p: a scalar with presence (in a oneof, or proto3 optional), written even when it holds its default
                String label = f.isMapField() ? "m" : f.isRepeated() ? "r"
                        : f.hasPresence() && f.getType() != FieldDescriptor.Type.MESSAGE ? "p" : "o";
                FieldDescriptor t = f.isMapField() ? f.getMessageType().findFieldByName("value") : f;
                String key = f.isMapField() ? typeOf(f.getMessageType().findFieldByName("key")) : "-";
                String typeName = t.getType() == FieldDescriptor.Type.MESSAGE ? t.getMessageType().getFullName()
                        : t.getType() == FieldDescriptor.Type.ENUM ? t.getEnumType().getFullName() : "-";
                String oneof = f.getRealContainingOneof() == null ? "-" : f.getRealContainingOneof().getName();
                out.append("F ").append(String.join(" ", f.getName(), f.getJsonName(), String.valueOf(f.getNumber()), label, key, typeOf(t),
                        typeName, oneof)).append('\n');
            }
        }
        for (String name : keptEnums) {
            out.append("E ").append(name);
            for (var v : enums.get(name).getValues()) {
                out.append(' ').append(v.getName()).append('=').append(v.getNumber());
            }
            out.append('\n');
        }
        return out.toString();
    }

    private static String typeOf(FieldDescriptor f) {
        return f.getType().name().toLowerCase(java.util.Locale.ROOT);
    }

    private void keepEnum(EnumDescriptor e, Set<String> keptEnums, List<String> todo) {
        keptEnums.add(e.getFullName());
        if (e.getContainingType() != null) {
            todo.add(e.getContainingType().getFullName());
        }
    }

    /** A proto's path as it is imported (under src/main/proto). */
    static String path(String pkg) {
        return "xds/" + pkg.replace('.', '/') + "/honoured.proto";
    }

    /** Where {@link ProtoJson} reads the messages' JSON names and types (under src/main). */
    static final String SCHEMA = "resources/" + ProtoJson.SCHEMA_RESOURCE;

    private static String outerClass(String pkg) {
        var b = new StringBuilder("Honoured");
        for (String part : pkg.split("[._]")) {
            b.append(Character.toUpperCase(part.charAt(0))).append(part.substring(1));
        }
        return b.append("Proto").toString();
    }

    private void message(Descriptor d, String indent, Set<String> keptMessages, Set<String> keptEnums, StringBuilder out, Set<String> imports,
            String pkg) {
        out.append(indent).append("message ").append(d.getName()).append(" {\n");
        String in = indent + "  ";
        for (Descriptor n : d.getNestedTypes()) {
            if (keptMessages.contains(n.getFullName()) && !n.getOptions().getMapEntry()) {
                message(n, in, keptMessages, keptEnums, out, imports, pkg);
            }
        }
        for (EnumDescriptor e : d.getEnumTypes()) {
            if (keptEnums.contains(e.getFullName())) {
                enumType(e, in, out);
            }
        }
        // fields in their real oneofs are written inside the oneof, in the order of its first member
        var fields = fields(d);
        var done = new LinkedHashSet<FieldDescriptor>();
        for (FieldDescriptor f : fields) {
            if (done.contains(f)) {
                continue;
            }
            var oneof = f.getRealContainingOneof();
            if (oneof != null) {
                out.append(in).append("oneof ").append(oneof.getName()).append(" {\n");
                for (FieldDescriptor g : fields) {
                    if (g.getRealContainingOneof() == oneof) {
                        out.append(in).append("  ").append(field(g, imports, pkg)).append('\n');
                        done.add(g);
                    }
                }
                out.append(in).append("}\n");
            } else {
                out.append(in).append(field(f, imports, pkg)).append('\n');
                done.add(f);
            }
        }
        out.append(indent).append("}\n");
    }

    private String field(FieldDescriptor f, Set<String> imports, String pkg) {
        String type;
        if (f.isMapField()) {
            var key = f.getMessageType().findFieldByName("key");
            var value = f.getMessageType().findFieldByName("value");
            type = "map<" + typeName(key, imports) + ", " + typeName(value, imports) + ">";
        } else {
            type = (f.isRepeated() ? "repeated " : f.hasPresence() && f.getContainingOneof() != null && f.getRealContainingOneof() == null ? "optional " : "")
                    + typeName(f, imports);
        }
        return type + " " + f.getName() + " = " + f.getNumber() + ";";
    }

    private String typeName(FieldDescriptor f, Set<String> imports) {
        switch (f.getType()) {
            case MESSAGE -> {
                imports.add(path(f.getMessageType().getFile().getPackage()));
                return "." + f.getMessageType().getFullName();
            }
            case ENUM -> {
                imports.add(path(f.getEnumType().getFile().getPackage()));
                return "." + f.getEnumType().getFullName();
            }
            default -> {
                return f.getType().name().toLowerCase(java.util.Locale.ROOT);
            }
        }
    }

    private static void enumType(EnumDescriptor e, String indent, StringBuilder out) {
        out.append(indent).append("enum ").append(e.getName()).append(" {\n");
        if (e.getOptions().getAllowAlias()) {
            out.append(indent).append("  option allow_alias = true;\n");
        }
        for (var v : e.getValues()) {
            out.append(indent).append("  ").append(v.getName()).append(" = ").append(v.getNumber()).append(";\n");
        }
        out.append(indent).append("}\n");
    }

    /** Writes the protos and the schema under {@code args[0]} (default proxy-core/src/main), removing protos no longer written. */
    public static void main(String[] args) throws IOException {
        Path root = Path.of(args.length > 0 ? args[0] : "proxy-core/src/main");
        var files = new HonouredProtos().files();
        if (Files.isDirectory(root.resolve("proto/xds"))) {
            try (var walk = Files.walk(root.resolve("proto/xds"))) {
                for (Path p : walk.filter(Files::isRegularFile).toList()) {
                    if (!files.containsKey(root.relativize(p).toString())) {
                        Files.delete(p);
                    }
                }
            }
        }
        for (var e : files.entrySet()) {
            Path p = root.resolve(e.getKey());
            Files.createDirectories(p.getParent());
            Files.writeString(p, e.getValue());
        }
        System.out.println("wrote " + files.size() + " files under " + root);
    }
}
