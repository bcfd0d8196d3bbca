package dev.isthmus.api.policy;

import dev.isthmus.api.names.DnsLabel;
import dev.isthmus.api.policy.Policies.Meta;
import dev.isthmus.api.policy.Policies.Origin;
import dev.isthmus.api.policy.YamlTree.Node;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.TreeMap;
import java.util.regex.Pattern;
import java.util.regex.PatternSyntaxException;
import java.util.stream.Stream;

/**
 * Validates a whole commit of policy: every YAML file under a directory, each document one resource.
 * Checks the schema (kinds, required fields, types, unknown fields), then rules across fields and
 * resources: destination weights summing to 100, duplicate names, more than one TrafficPolicy or
 * FailoverPolicy for a service, routes that can never match (an identical match earlier), more than
 * one MeshPolicy; and, when the registry's subsets are given, warns of subsets no endpoint has.
 * Every problem names the file, the line and the field path. The same code runs in the controller
 * (on each commit) and in {@code isthmus policy validate DIR} (offline).
 */
public final class PolicyValidator {

    /** One finding. Errors refuse the commit; warnings do not. */
    public record Problem(String file, int line, String field, String message, boolean warning) {
        @Override
        public String toString() {
            return file + ":" + line + ": " + (warning ? "warning: " : "") + (field.isEmpty() ? "" : field + ": ") + message;
        }
    }

    /** The accepted resources (empty when there are errors) and every problem found. */
    public record Result(Policies.Bundle bundle, List<Problem> problems) {
        public boolean ok() {
            return problems.stream().allMatch(Problem::warning);
        }

        public List<Problem> errors() {
            return problems.stream().filter(p -> !p.warning()).toList();
        }
    }

    static final Set<String> KINDS = Set.of("TrafficPolicy", "FailoverPolicy", "AuthorizationPolicy", "MeshPolicy");
    /** Envoy's retry_on conditions the proxies understand (the gRPC ones apply to gRPC calls' trailers-only answers). */
    static final Set<String> RETRY_ON = Set.of("connect-failure", "reset", "5xx", "gateway-error", "refused-stream", "cancelled", "deadline-exceeded",
            "internal", "resource-exhausted", "unavailable");
    static final Set<String> METHODS = Set.of("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE");
    private static final Pattern DURATION = Pattern.compile("([0-9]+)(ms|s|m|h)");
    private static final Pattern SUBSET = Pattern.compile("[A-Za-z0-9.-]{1,63}");
    private static final Pattern SPIFFE = Pattern.compile("spiffe://[a-z0-9.-]+(/[A-Za-z0-9._~!$&'()*+,;=:@%-]+)*");

    private PolicyValidator() {
    }

    /** Validates every {@code *.yaml} and {@code *.yml} under {@code dir} (hidden directories such as {@code .git} skipped). */
    public static Result validateDirectory(Path dir, Map<String, Set<String>> subsets) throws IOException {
        var files = new TreeMap<String, String>();
        try (Stream<Path> walk = Files.walk(dir)) {
            for (Path p : walk.filter(Files::isRegularFile).toList()) {
                Path rel = dir.relativize(p);
                boolean hidden = false;
                for (Path part : rel) {
                    hidden |= part.toString().startsWith(".");
                }
                String name = p.getFileName().toString();
                if (!hidden && (name.endsWith(".yaml") || name.endsWith(".yml"))) {
                    files.put(rel.toString().replace('\\', '/'), Files.readString(p, StandardCharsets.UTF_8));
                }
            }
        }
        return validate(files, subsets);
    }

    /**
     * Validates files given by name.
     *
     * @param subsets for each service ({@code namespace/name}) the subsets its endpoints have; null when unknown (offline)
     */
    public static Result validate(Map<String, String> files, Map<String, Set<String>> subsets) {
        var problems = new ArrayList<Problem>();
        var traffic = new ArrayList<Policies.TrafficPolicy>();
        var failover = new ArrayList<Policies.FailoverPolicy>();
        var authorization = new ArrayList<Policies.AuthorizationPolicy>();
        var mesh = new ArrayList<Policies.MeshPolicy>();
        var names = new HashMap<String, Origin>();
        new TreeMap<>(files).forEach((file, text) -> {
            List<Node> docs;
            try {
                docs = YamlTree.parse(text);
            } catch (YamlTree.SyntaxError e) {
                problems.add(new Problem(file, e.line(), "", e.getMessage(), false));
                return;
            }
            for (int d = 0; d < docs.size(); d++) {
                var r = new Reader(file, problems);
                Node doc = docs.get(d);
                if (!doc.isMap()) {
                    r.error(doc.line(), "", "a resource must be a map with apiVersion, kind, metadata and spec, found " + doc.kind());
                    continue;
                }
                r.keys(doc, "", Set.of("apiVersion", "kind", "metadata", "spec"));
                String api = r.string(doc, "apiVersion", "apiVersion", true);
                if (api != null && !api.equals(Policies.API_VERSION)) {
                    r.error(doc.lineOf("apiVersion"), "apiVersion", "must be " + Policies.API_VERSION + ", found '" + api + "'");
                }
                String kind = r.string(doc, "kind", "kind", true);
                if (kind != null && !KINDS.contains(kind)) {
                    r.error(doc.lineOf("kind"), "kind", "'" + kind + "' is not a policy kind; use one of " + new java.util.TreeSet<>(KINDS));
                    continue;
                }
                Meta meta = r.meta(doc, kind == null || !kind.equals("MeshPolicy"));
                Node spec = r.map(doc, "spec", "spec", true);
                if (kind == null || meta == null || spec == null) {
                    continue;
                }
                String key = kind + "/" + (meta.namespace() == null ? "" : meta.namespace() + "/") + meta.name();
                Origin earlier = names.putIfAbsent(key, meta.origin());
                if (earlier != null) {
                    r.error(doc.lineOf("metadata"), "metadata.name", kind + " '" + meta.name() + "' is already defined at " + earlier);
                    continue;
                }
                switch (kind) {
                    case "TrafficPolicy" -> r.traffic(meta, spec, subsets).ifPresent(traffic::add);
                    case "FailoverPolicy" -> r.failover(meta, spec).ifPresent(failover::add);
                    case "AuthorizationPolicy" -> r.authorization(meta, spec).ifPresent(authorization::add);
                    default -> r.mesh(meta, spec).ifPresent(mesh::add);
                }
            }
        });
        onePerService(traffic.stream().map(t -> Map.entry(t.service(), t.meta())).toList(), "TrafficPolicy", problems);
        onePerService(failover.stream().map(f -> Map.entry(f.service(), f.meta())).toList(), "FailoverPolicy", problems);
        for (int i = 1; i < mesh.size(); i++) {
            var m = mesh.get(i).meta();
            problems.add(new Problem(m.origin().file(), m.origin().line(), "kind", "only one MeshPolicy may exist; another is at "
                    + mesh.get(0).meta().origin(), false));
        }
        var result = new Policies.Bundle(List.copyOf(traffic), List.copyOf(failover), List.copyOf(authorization), List.copyOf(mesh));
        boolean ok = problems.stream().allMatch(Problem::warning);
        return new Result(ok ? result : Policies.Bundle.EMPTY, List.copyOf(problems));
    }

    private static void onePerService(List<Map.Entry<String, Meta>> entries, String kind, List<Problem> problems) {
        var seen = new HashMap<String, Meta>();
        for (var e : entries) {
            Meta first = seen.putIfAbsent(e.getKey(), e.getValue());
            if (first != null) {
                problems.add(new Problem(e.getValue().origin().file(), e.getValue().origin().line(), "spec.service",
                        "service " + e.getKey() + " already has a " + kind + " ('" + first.name() + "' at " + first.origin()
                                + "); give each service one, with all its routes", false));
            }
        }
    }

    /** Reads one document, recording problems against its file. */
    private static final class Reader {
        private final String file;
        private final List<Problem> problems;

        Reader(String file, List<Problem> problems) {
            this.file = file;
            this.problems = problems;
        }

        void error(int line, String field, String message) {
            problems.add(new Problem(file, line, field, message, false));
        }

        void warn(int line, String field, String message) {
            problems.add(new Problem(file, line, field, message, true));
        }

        void keys(Node map, String path, Set<String> allowed) {
            for (String k : map.map().keySet()) {
                if (!allowed.contains(k)) {
                    error(map.lineOf(k), join(path, k), "unknown field; known here: " + new java.util.TreeSet<>(allowed));
                }
            }
        }

        private static String join(String path, String key) {
            return path.isEmpty() ? key : path + "." + key;
        }

        Node get(Node map, String key, String path, boolean required) {
            Node n = map.map().get(key);
            if (n == null || n.isNull()) {
                if (required) {
                    error(map.line(), path, "is required");
                }
                return null;
            }
            return n;
        }

        Node map(Node parent, String key, String path, boolean required) {
            Node n = get(parent, key, path, required);
            if (n != null && !n.isMap()) {
                error(n.line(), path, "must be a map, found " + n.kind());
                return null;
            }
            return n;
        }

        List<Node> list(Node parent, String key, String path, boolean required) {
            Node n = get(parent, key, path, required);
            if (n == null) {
                return null;
            }
            if (!n.isList()) {
                error(n.line(), path, "must be a list, found " + n.kind());
                return null;
            }
            return n.list();
        }

        String string(Node parent, String key, String path, boolean required) {
            Node n = get(parent, key, path, required);
            if (n == null) {
                return null;
            }
            if (!n.isScalar()) {
                error(n.line(), path, "must be text, found " + n.kind());
                return null;
            }
            return n.scalar();
        }

        Integer integer(Node parent, String key, String path, boolean required, int min, int max) {
            String s = string(parent, key, path, required);
            if (s == null) {
                return null;
            }
            try {
                int v = Integer.parseInt(s);
                if (v < min || v > max) {
                    error(parent.lineOf(key), path, "must be " + min + "-" + max + ", found " + v);
                    return null;
                }
                return v;
            } catch (NumberFormatException e) {
                error(parent.lineOf(key), path, "must be a whole number, found '" + s + "'");
                return null;
            }
        }

        Optional<Duration> duration(Node parent, String key, String path) {
            String s = string(parent, key, path, false);
            if (s == null) {
                return Optional.empty();
            }
            var m = DURATION.matcher(s);
            if (!m.matches() || Long.parseLong(m.group(1)) == 0) {
                error(parent.lineOf(key), path, "must be a positive duration such as 500ms, 2s, 1m or 1h, found '" + s + "'");
                return Optional.empty();
            }
            long v = Long.parseLong(m.group(1));
            return Optional.of(switch (m.group(2)) {
                case "ms" -> Duration.ofMillis(v);
                case "s" -> Duration.ofSeconds(v);
                case "m" -> Duration.ofMinutes(v);
                default -> Duration.ofHours(v);
            });
        }

        Meta meta(Node doc, boolean namespaced) {
            Node m = map(doc, "metadata", "metadata", true);
            if (m == null) {
                return null;
            }
            keys(m, "metadata", Set.of("name", "namespace", "labels", "annotations"));
            String name = string(m, "name", "metadata.name", true);
            String namespace = string(m, "namespace", "metadata.namespace", namespaced);
            boolean ok = name != null && label(m, "name", "metadata.name", name);
            if (namespace != null) {
                if (!namespaced) {
                    error(m.lineOf("namespace"), "metadata.namespace", "a MeshPolicy applies to the whole mesh; remove the namespace");
                    ok = false;
                } else {
                    ok &= label(m, "namespace", "metadata.namespace", namespace);
                }
            } else if (namespaced) {
                ok = false;
            }
            return ok ? new Meta(name, namespace, new Origin(file, doc.line())) : null;
        }

        boolean label(Node parent, String key, String path, String value) {
            try {
                DnsLabel.require(path, value);
                return true;
            } catch (IllegalArgumentException e) {
                error(parent.lineOf(key), path, e.getMessage());
                return false;
            }
        }

        /** {@code spec.service} as {@code namespace/name}. */
        String service(Meta meta, Node spec, boolean required) {
            String name = string(spec, "service", "spec.service", required);
            if (name == null) {
                return null;
            }
            if (name.contains("/")) {
                error(spec.lineOf("service"), "spec.service", "give the service's name only; its namespace is metadata.namespace");
                return null;
            }
            return label(spec, "service", "spec.service", name) ? meta.namespace() + "/" + name : null;
        }

        Optional<Policies.TrafficPolicy> traffic(Meta meta, Node spec, Map<String, Set<String>> subsets) {
            int before = problems.size();
            keys(spec, "spec", Set.of("service", "routes", "circuitBreaker", "outlierDetection"));
            String service = service(meta, spec, true);
            var routes = new ArrayList<Policies.Route>();
            List<Node> list = list(spec, "routes", "spec.routes", true);
            var matches = new LinkedHashMap<Policies.Match, Integer>();
            var routeNames = new HashSet<String>();
            if (list != null && list.isEmpty()) {
                error(spec.lineOf("routes"), "spec.routes", "must have at least one route");
            }
            for (int i = 0; list != null && i < list.size(); i++) {
                String path = "spec.routes[" + i + "]";
                Node r = list.get(i);
                if (!r.isMap()) {
                    error(r.line(), path, "must be a map, found " + r.kind());
                    continue;
                }
                keys(r, path, Set.of("name", "match", "destinations", "timeout", "retries"));
                String name = string(r, "name", path + ".name", false);
                if (name == null) {
                    name = "route-" + i;
                }
                if (!routeNames.add(name)) {
                    error(r.lineOf("name"), path + ".name", "another route of this policy is named '" + name + "'");
                }
                var match = match(r, path);
                Integer earlier = matches.putIfAbsent(match, i);
                if (earlier != null) {
                    error(r.lineOf("match"), path + ".match", "spec.routes[" + earlier + "] has the same match, so this route can never be used");
                }
                var destinations = destinations(r, path, service, subsets);
                var retries = retries(r, path);
                routes.add(new Policies.Route(name, match, destinations, duration(r, "timeout", path + ".timeout"), retries));
            }
            Optional<Policies.CircuitBreaker> breaker = Optional.empty();
            Node cb = map(spec, "circuitBreaker", "spec.circuitBreaker", false);
            if (cb != null) {
                keys(cb, "spec.circuitBreaker", Set.of("maxConnections", "maxPendingRequests", "maxRequests"));
                Integer c = integer(cb, "maxConnections", "spec.circuitBreaker.maxConnections", false, 1, 1_000_000);
                Integer p = integer(cb, "maxPendingRequests", "spec.circuitBreaker.maxPendingRequests", false, 1, 1_000_000);
                Integer q = integer(cb, "maxRequests", "spec.circuitBreaker.maxRequests", false, 1, 1_000_000);
                breaker = Optional.of(new Policies.CircuitBreaker(c == null ? 1024 : c, p == null ? 1024 : p, q == null ? 1024 : q));
            }
            Optional<Policies.OutlierDetection> outlier = Optional.empty();
            Node od = map(spec, "outlierDetection", "spec.outlierDetection", false);
            if (od != null) {
                keys(od, "spec.outlierDetection", Set.of("consecutiveErrors", "baseEjectionTime", "maxEjectionPercent"));
                Integer e = integer(od, "consecutiveErrors", "spec.outlierDetection.consecutiveErrors", false, 1, 1000);
                var t = duration(od, "baseEjectionTime", "spec.outlierDetection.baseEjectionTime");
                Integer m = integer(od, "maxEjectionPercent", "spec.outlierDetection.maxEjectionPercent", false, 1, 100);
                outlier = Optional.of(new Policies.OutlierDetection(e == null ? 5 : e, t.orElse(Duration.ofSeconds(30)), m == null ? 10 : m));
            }
            return problems.size() > before && problems.subList(before, problems.size()).stream().anyMatch(p -> !p.warning()) || service == null
                    ? Optional.empty() : Optional.of(new Policies.TrafficPolicy(meta, service, List.copyOf(routes), breaker, outlier));
        }

        private Policies.Match match(Node route, String path) {
            Node m = map(route, "match", path + ".match", false);
            if (m == null) {
                return new Policies.Match(Optional.empty(), List.of(), Optional.empty());
            }
            String mp = path + ".match";
            keys(m, mp, Set.of("path", "headers", "method"));
            Optional<Policies.PathMatch> pathMatch = Optional.empty();
            Node p = map(m, "path", mp + ".path", false);
            if (p != null) {
                keys(p, mp + ".path", Set.of("prefix", "exact", "regex"));
                String prefix = string(p, "prefix", mp + ".path.prefix", false);
                String exact = string(p, "exact", mp + ".path.exact", false);
                String regex = string(p, "regex", mp + ".path.regex", false);
                int given = (prefix != null ? 1 : 0) + (exact != null ? 1 : 0) + (regex != null ? 1 : 0);
                if (given != 1) {
                    error(p.line(), mp + ".path", "give exactly one of prefix, exact or regex");
                }
                for (var e : new String[][] {{"prefix", prefix}, {"exact", exact}}) {
                    if (e[1] != null && !e[1].startsWith("/")) {
                        error(p.lineOf(e[0]), mp + ".path." + e[0], "must start with '/', found '" + e[1] + "'");
                    }
                }
                if (regex != null) {
                    try {
                        Pattern.compile(regex);
                    } catch (PatternSyntaxException e) {
                        error(p.lineOf("regex"), mp + ".path.regex", "is not a valid regular expression: " + e.getDescription());
                    }
                }
                pathMatch = Optional.of(new Policies.PathMatch(prefix, exact, regex));
            }
            var headers = new ArrayList<Policies.HeaderMatch>();
            List<Node> hs = list(m, "headers", mp + ".headers", false);
            for (int i = 0; hs != null && i < hs.size(); i++) {
                Node h = hs.get(i);
                String hp = mp + ".headers[" + i + "]";
                if (!h.isMap()) {
                    error(h.line(), hp, "must be a map with name and exact, found " + h.kind());
                    continue;
                }
                keys(h, hp, Set.of("name", "exact"));
                String name = string(h, "name", hp + ".name", true);
                if (name != null && !name.matches("[A-Za-z0-9!#$%&'*+.^_`|~-]+")) {
                    error(h.lineOf("name"), hp + ".name", "'" + name + "' is not an HTTP header name");
                }
                headers.add(new Policies.HeaderMatch(name == null ? "" : name.toLowerCase(java.util.Locale.ROOT), string(h, "exact", hp + ".exact", false)));
            }
            String method = string(m, "method", mp + ".method", false);
            if (method != null && !METHODS.contains(method)) {
                error(m.lineOf("method"), mp + ".method", "'" + method + "' is not an HTTP method; use one of " + new java.util.TreeSet<>(METHODS));
            }
            return new Policies.Match(pathMatch, List.copyOf(headers), Optional.ofNullable(method));
        }

        private List<Policies.Destination> destinations(Node route, String path, String service, Map<String, Set<String>> subsets) {
            var out = new ArrayList<Policies.Destination>();
            List<Node> ds = list(route, "destinations", path + ".destinations", true);
            if (ds == null) {
                return out;
            }
            if (ds.isEmpty()) {
                error(route.lineOf("destinations"), path + ".destinations", "must name at least one destination");
                return out;
            }
            int total = 0;
            boolean weightsOk = true;
            for (int i = 0; i < ds.size(); i++) {
                Node d = ds.get(i);
                String dp = path + ".destinations[" + i + "]";
                if (!d.isMap()) {
                    error(d.line(), dp, "must be a map with subset, cluster and weight, found " + d.kind());
                    weightsOk = false;
                    continue;
                }
                keys(d, dp, Set.of("subset", "cluster", "weight"));
                String subset = string(d, "subset", dp + ".subset", false);
                if (subset != null && !SUBSET.matcher(subset).matches()) {
                    error(d.lineOf("subset"), dp + ".subset", "must be 1-63 letters, digits, '.' or '-', found '" + subset + "'");
                } else if (subset != null && subsets != null && service != null && !subsets.getOrDefault(service, Set.of()).contains(subset)) {
                    warn(d.lineOf("subset"), dp + ".subset", "no endpoint of " + service + " has version '" + subset + "' yet");
                }
                String cluster = string(d, "cluster", dp + ".cluster", false);
                if (cluster != null) {
                    label(d, "cluster", dp + ".cluster", cluster);
                }
                Integer weight = integer(d, "weight", dp + ".weight", ds.size() > 1, 0, 100);
                if (weight == null) {
                    weightsOk &= ds.size() == 1;
                    weight = ds.size() == 1 ? 100 : 0;
                }
                total += weight;
                out.add(new Policies.Destination(subset == null ? "" : subset, Optional.ofNullable(cluster), weight));
            }
            if (weightsOk && total != 100) {
                error(route.lineOf("destinations"), path + ".destinations", "weights must sum to 100, they sum to " + total);
            }
            return out;
        }

        private Optional<Policies.Retries> retries(Node route, String path) {
            Node r = map(route, "retries", path + ".retries", false);
            if (r == null) {
                return Optional.empty();
            }
            String rp = path + ".retries";
            keys(r, rp, Set.of("attempts", "on", "budgetPercent"));
            Integer attempts = integer(r, "attempts", rp + ".attempts", true, 0, 10);
            var on = new ArrayList<String>();
            List<Node> conditions = list(r, "on", rp + ".on", false);
            for (int i = 0; conditions != null && i < conditions.size(); i++) {
                Node c = conditions.get(i);
                if (!c.isScalar() || !RETRY_ON.contains(c.scalar())) {
                    error(c.line(), rp + ".on[" + i + "]", "must be one of " + new java.util.TreeSet<>(RETRY_ON) + ", found " + c.kind());
                } else {
                    on.add(c.scalar());
                }
            }
            Integer budget = integer(r, "budgetPercent", rp + ".budgetPercent", false, 1, 100);
            return Optional.of(new Policies.Retries(attempts == null ? 0 : attempts, on.isEmpty() ? List.of("connect-failure", "reset") : List.copyOf(on),
                    Optional.ofNullable(budget)));
        }

        Optional<Policies.FailoverPolicy> failover(Meta meta, Node spec) {
            int before = problems.size();
            keys(spec, "spec", Set.of("service", "mode", "regions"));
            String service = service(meta, spec, true);
            String mode = string(spec, "mode", "spec.mode", false);
            if (mode == null) {
                mode = "ordered";
            } else if (!mode.equals("ordered") && !mode.equals("locality")) {
                error(spec.lineOf("mode"), "spec.mode", "must be 'ordered' (regions in the order given) or 'locality' (nearest first), found '" + mode + "'");
            }
            var regions = new ArrayList<String>();
            List<Node> rs = list(spec, "regions", "spec.regions", mode.equals("ordered"));
            for (int i = 0; rs != null && i < rs.size(); i++) {
                Node n = rs.get(i);
                if (!n.isScalar() || n.isNull()) {
                    error(n.line(), "spec.regions[" + i + "]", "must be a region name, found " + n.kind());
                } else if (label(spec, "regions", "spec.regions[" + i + "]", n.scalar())) {
                    if (regions.contains(n.scalar())) {
                        error(n.line(), "spec.regions[" + i + "]", "region '" + n.scalar() + "' is listed twice");
                    }
                    regions.add(n.scalar());
                }
            }
            if (mode.equals("ordered") && rs != null && rs.isEmpty()) {
                error(spec.lineOf("regions"), "spec.regions", "must list at least one region");
            }
            return problems.size() > before || service == null ? Optional.empty()
                    : Optional.of(new Policies.FailoverPolicy(meta, service, mode, List.copyOf(regions)));
        }

        Optional<Policies.AuthorizationPolicy> authorization(Meta meta, Node spec) {
            int before = problems.size();
            keys(spec, "spec", Set.of("service", "action", "rules"));
            String service = spec.map().containsKey("service") ? service(meta, spec, false) : "";
            String action = string(spec, "action", "spec.action", false);
            if (action == null) {
                action = "ALLOW";
            } else if (!action.equals("ALLOW") && !action.equals("DENY")) {
                error(spec.lineOf("action"), "spec.action", "must be ALLOW or DENY, found '" + action + "'");
            }
            var rules = new ArrayList<Policies.Rule>();
            List<Node> rs = list(spec, "rules", "spec.rules", true);
            for (int i = 0; rs != null && i < rs.size(); i++) {
                Node r = rs.get(i);
                String rp = "spec.rules[" + i + "]";
                if (!r.isMap()) {
                    error(r.line(), rp, "must be a map with from and to, found " + r.kind());
                    continue;
                }
                keys(r, rp, Set.of("from", "to"));
                var from = new ArrayList<Policies.Source>();
                List<Node> fs = list(r, "from", rp + ".from", false);
                for (int j = 0; fs != null && j < fs.size(); j++) {
                    Node f = fs.get(j);
                    String fp = rp + ".from[" + j + "]";
                    if (!f.isMap()) {
                        error(f.line(), fp, "must be a map with principal or trustDomain, found " + f.kind());
                        continue;
                    }
                    keys(f, fp, Set.of("principal", "trustDomain"));
                    String principal = string(f, "principal", fp + ".principal", false);
                    String td = string(f, "trustDomain", fp + ".trustDomain", false);
                    if ((principal == null) == (td == null)) {
                        error(f.line(), fp, "give exactly one of principal (a SPIFFE ID) or trustDomain");
                    }
                    if (principal != null && !SPIFFE.matcher(principal).matches()) {
                        error(f.lineOf("principal"), fp + ".principal", "'" + principal + "' is not a SPIFFE ID (spiffe://trust-domain/path)");
                    }
                    if (td != null && !td.matches("[a-z0-9.-]+")) {
                        error(f.lineOf("trustDomain"), fp + ".trustDomain", "'" + td + "' is not a trust domain name");
                    }
                    from.add(new Policies.Source(principal, td));
                }
                var to = new ArrayList<Policies.Operation>();
                List<Node> ts = list(r, "to", rp + ".to", false);
                for (int j = 0; ts != null && j < ts.size(); j++) {
                    Node t = ts.get(j);
                    String tp = rp + ".to[" + j + "]";
                    if (!t.isMap()) {
                        error(t.line(), tp, "must be a map with methods and paths, found " + t.kind());
                        continue;
                    }
                    keys(t, tp, Set.of("methods", "paths"));
                    var methods = new ArrayList<String>();
                    List<Node> ms = list(t, "methods", tp + ".methods", false);
                    for (int k = 0; ms != null && k < ms.size(); k++) {
                        Node m = ms.get(k);
                        if (!m.isScalar() || !METHODS.contains(m.scalar())) {
                            error(m.line(), tp + ".methods[" + k + "]", "must be an HTTP method such as GET, found " + m.kind());
                        } else {
                            methods.add(m.scalar());
                        }
                    }
                    var paths = new ArrayList<String>();
                    List<Node> ps = list(t, "paths", tp + ".paths", false);
                    for (int k = 0; ps != null && k < ps.size(); k++) {
                        Node p = ps.get(k);
                        if (!p.isScalar() || p.scalar() == null || !p.scalar().startsWith("/") || p.scalar().indexOf('*') >= 0
                                && p.scalar().indexOf('*') != p.scalar().length() - 1) {
                            error(p.line(), tp + ".paths[" + k + "]", "must be a path starting with '/', with '*' only at its end (a prefix), found "
                                    + p.kind());
                        } else {
                            paths.add(p.scalar());
                        }
                    }
                    to.add(new Policies.Operation(List.copyOf(methods), List.copyOf(paths)));
                }
                rules.add(new Policies.Rule(List.copyOf(from), List.copyOf(to)));
            }
            return problems.size() > before || service == null ? Optional.empty()
                    : Optional.of(new Policies.AuthorizationPolicy(meta, service, action, List.copyOf(rules)));
        }

        Optional<Policies.MeshPolicy> mesh(Meta meta, Node spec) {
            int before = problems.size();
            keys(spec, "spec", Set.of("mtls", "exports"));
            String mtls = string(spec, "mtls", "spec.mtls", false);
            if (mtls == null) {
                mtls = "STRICT";
            } else if (!mtls.equals("STRICT") && !mtls.equals("PERMISSIVE")) {
                error(spec.lineOf("mtls"), "spec.mtls", "must be STRICT or PERMISSIVE, found '" + mtls + "'");
            }
            var exports = new ArrayList<Policies.Export>();
            var clusters = new HashSet<String>();
            List<Node> es = list(spec, "exports", "spec.exports", false);
            for (int i = 0; es != null && i < es.size(); i++) {
                Node e = es.get(i);
                String ep = "spec.exports[" + i + "]";
                if (!e.isMap()) {
                    error(e.line(), ep, "must be a map with cluster and services, found " + e.kind());
                    continue;
                }
                keys(e, ep, Set.of("cluster", "services"));
                String cluster = string(e, "cluster", ep + ".cluster", true);
                if (cluster != null && label(e, "cluster", ep + ".cluster", cluster) && !clusters.add(cluster)) {
                    error(e.lineOf("cluster"), ep + ".cluster", "cluster '" + cluster + "' is listed twice");
                }
                var services = new ArrayList<String>();
                List<Node> ss = list(e, "services", ep + ".services", true);
                for (int j = 0; ss != null && j < ss.size(); j++) {
                    Node s = ss.get(j);
                    String sp = ep + ".services[" + j + "]";
                    if (!s.isScalar() || s.scalar() == null) {
                        error(s.line(), sp, "must be namespace/name or '*', found " + s.kind());
                        continue;
                    }
                    if (!s.scalar().equals("*")) {
                        try {
                            dev.isthmus.api.names.ServiceName.parse(s.scalar());
                        } catch (IllegalArgumentException x) {
                            error(s.line(), sp, x.getMessage());
                            continue;
                        }
                    }
                    services.add(s.scalar());
                }
                exports.add(new Policies.Export(cluster, List.copyOf(services)));
            }
            return problems.size() > before ? Optional.empty() : Optional.of(new Policies.MeshPolicy(meta, mtls, List.copyOf(exports)));
        }
    }
}
