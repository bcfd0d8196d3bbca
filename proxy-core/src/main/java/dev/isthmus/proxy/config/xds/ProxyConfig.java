package dev.isthmus.proxy.config.xds;

import java.net.InetSocketAddress;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * What a proxy runs, translated from xDS v3 resources (a static bootstrap file now, the ADS stream
 * later) by {@link XdsTranslator}: immutable, checked, and independent of the protos.
 */
public record ProxyConfig(String version, List<ListenerSpec> listeners, Map<String, ClusterSpec> clusters) {

    public ProxyConfig {
        listeners = List.copyOf(listeners);
        clusters = Map.copyOf(clusters);
    }

    /**
     * A listener: a TCP proxy (connections to {@code address} go to {@code cluster}) or, with
     * {@code http}, an HTTP/1.1 proxy routing each request ({@code cluster} is then empty).
     * {@code mtls}: callers must present a certificate the federated bundle vouches for; with
     * {@code plaintextToo} (an HTTP listener under MeshPolicy {@code PERMISSIVE}), a connection whose
     * first bytes are not TLS is served in plaintext too, without a caller identity.
     */
    public record ListenerSpec(String name, InetSocketAddress address, String cluster, Optional<HttpSpec> http, boolean mtls,
            boolean plaintextToo) {
        public ListenerSpec(String name, InetSocketAddress address, String cluster) {
            this(name, address, cluster, Optional.empty(), false, false);
        }

        public ListenerSpec(String name, InetSocketAddress address, String cluster, Optional<HttpSpec> http, boolean mtls) {
            this(name, address, cluster, http, mtls, false);
        }
    }

    /** An HTTP connection manager's inline route configuration, and its RBAC filter if it has one. */
    public record HttpSpec(String routeConfigName, List<VirtualHost> virtualHosts, Optional<Rbac> rbac) {
        public HttpSpec {
            virtualHosts = List.copyOf(virtualHosts);
        }

        public HttpSpec(String routeConfigName, List<VirtualHost> virtualHosts) {
            this(routeConfigName, virtualHosts, Optional.empty());
        }
    }

    /**
     * Envoy's RBAC filter, the subset Isthmus's AuthorizationPolicy needs: with {@code allow}, a
     * request passes if some policy matches it; without, it is refused if some policy matches.
     */
    public record Rbac(boolean allow, List<RbacPolicy> policies, Rbac next) {
        public Rbac {
            policies = List.copyOf(policies);
        }

        public Rbac(boolean allow, List<RbacPolicy> policies) {
            this(allow, policies, null);
        }

        /** This filter followed by {@code then} (a later RBAC filter of the same chain). */
        public Rbac andThen(Rbac then) {
            return new Rbac(allow, policies, next == null ? then : next.andThen(then));
        }

        /** Whether a request from {@code caller} (its verified SPIFFE ID, or empty) may pass this filter and the ones after it. */
        public boolean permits(String caller, String method, String path) {
            boolean matched = policies.stream().anyMatch(p -> p.matches(caller, method, path));
            return allow == matched && (next == null || next.permits(caller, method, path));
        }
    }

    /** A policy matches when one of its permissions and one of its principals match. */
    public record RbacPolicy(String name, List<Permission> permissions, List<Principal> principals) {
        public RbacPolicy {
            permissions = List.copyOf(permissions);
            principals = List.copyOf(principals);
        }

        boolean matches(String caller, String method, String path) {
            return permissions.stream().anyMatch(p -> p.matches(method, path)) && principals.stream().anyMatch(p -> p.matches(caller));
        }
    }

    /** Every given part must match: the method (exact), the path (exact or prefix); nothing given: any request. */
    public record Permission(String method, String pathExact, String pathPrefix) {
        boolean matches(String m, String path) {
            return (method == null || method.equals(m)) && (pathExact == null || pathExact.equals(path))
                    && (pathPrefix == null || path.startsWith(pathPrefix));
        }
    }

    /** The caller's verified SPIFFE ID, exact or by prefix (a trust domain: {@code spiffe://eu-west.acme.isthmus/}); both null: anyone. */
    public record Principal(String idExact, String idPrefix) {
        boolean matches(String caller) {
            String c = caller == null ? "" : caller;
            return (idExact == null || idExact.equals(c)) && (idPrefix == null || !c.isEmpty() && c.startsWith(idPrefix));
        }
    }

    /** Requests whose Host (without port) matches one of {@code domains} ({@code *} matches any; {@code *.x} a suffix). */
    public record VirtualHost(String name, List<String> domains, List<Route> routes) {
        public VirtualHost {
            domains = List.copyOf(domains);
            routes = List.copyOf(routes);
        }
    }

    /**
     * A route: matched by path prefix, exact path or regular expression (the whole path), and by
     * headers (all must match; {@code :method} is the request's method), to one cluster or weighted
     * clusters.
     *
     * @param timeout the whole request's deadline (Envoy's default 15 s); zero: none
     */
    public record Route(String prefix, String path, java.util.regex.Pattern regex, List<HeaderMatch> headers, List<WeightedCluster> clusters,
            Duration timeout, RetrySpec retry) {
        public Route {
            clusters = List.copyOf(clusters);
            headers = headers == null ? List.of() : List.copyOf(headers);
        }

        public Route(String prefix, String path, List<WeightedCluster> clusters, Duration timeout, RetrySpec retry) {
            this(prefix, path, null, List.of(), clusters, timeout, retry);
        }

        public boolean matches(String requestPath) {
            return matches(requestPath, name -> null);
        }

        /** @param header a request header by lower-case name ({@code :method} included), null when absent */
        public boolean matches(String requestPath, java.util.function.Function<String, String> header) {
            boolean pathOk = path != null ? path.equals(requestPath) : regex != null ? regex.matcher(requestPath).matches() : requestPath.startsWith(prefix);
            if (!pathOk) {
                return false;
            }
            for (HeaderMatch h : headers) {
                String v = header.apply(h.name());
                if (v == null || h.exact() != null && !h.exact().equals(v)) {
                    return false;
                }
            }
            return true;
        }

        @Override
        public boolean equals(Object o) {
            return o instanceof Route r && java.util.Objects.equals(prefix, r.prefix) && java.util.Objects.equals(path, r.path)
                    && java.util.Objects.equals(regex == null ? null : regex.pattern(), r.regex == null ? null : r.regex.pattern())
                    && headers.equals(r.headers) && clusters.equals(r.clusters) && java.util.Objects.equals(timeout, r.timeout)
                    && java.util.Objects.equals(retry, r.retry);
        }

        @Override
        public int hashCode() {
            return java.util.Objects.hash(prefix, path, regex == null ? null : regex.pattern(), headers, clusters, timeout, retry);
        }

        /** The cluster for one request: the only one, or a weighted random choice. */
        public String pickCluster() {
            if (clusters.size() == 1) {
                return clusters.get(0).cluster();
            }
            int draw = java.util.concurrent.ThreadLocalRandom.current().nextInt(clusters.stream().mapToInt(WeightedCluster::weight).sum());
            for (var w : clusters) {
                draw -= w.weight();
                if (draw < 0) {
                    return w.cluster();
                }
            }
            return clusters.get(clusters.size() - 1).cluster();
        }
    }

    public record WeightedCluster(String cluster, int weight) {
    }

    /** A header a route requires: {@code name} lower-case, with this exact value, or present when {@code exact} is null. */
    public record HeaderMatch(String name, String exact) {
    }

    /**
     * When to retry: {@code retryOn} holds Envoy's conditions ({@link #CONDITIONS}): {@code connect-failure},
     * {@code reset}, {@code 5xx} and {@code gateway-error} retry idempotent methods only, except a connect
     * failure (nothing was sent); {@code refused-stream} (the upstream refused an HTTP/2 stream unprocessed)
     * and the gRPC statuses ({@link #GRPC_CONDITIONS}, in a trailers-only answer) retry any method.
     */
    public record RetrySpec(java.util.Set<String> retryOn, int numRetries) {
        public static final RetrySpec NONE = new RetrySpec(java.util.Set.of(), 0);
        /** Envoy's {@code x-envoy-retry-grpc-on} names and the gRPC status codes they stand for. */
        public static final java.util.Map<String, Integer> GRPC_CONDITIONS = java.util.Map.of("cancelled", 1, "deadline-exceeded", 4,
                "resource-exhausted", 8, "internal", 13, "unavailable", 14);
        /** Every condition understood, in the order the error messages list them. */
        public static final List<String> CONDITIONS = List.of("connect-failure", "reset", "5xx", "gateway-error", "refused-stream", "cancelled",
                "deadline-exceeded", "internal", "resource-exhausted", "unavailable");

        /**
         * Whether this policy retries what happened: {@code connect-failure}, {@code reset} (closed
         * before the answer), {@code refused-stream}, {@code 5xx} (an answer with {@code status}) or a
         * gRPC status name. As in Envoy, {@code reset}, {@code 5xx} and {@code gateway-error} also cover
         * connect failures, resets and refused streams; {@code gateway-error} covers the answers 502-504.
         * The request's method is {@link #anyMethod}'s matter.
         */
        public boolean retries(String condition, int status) {
            boolean anyReset = retryOn.contains("reset") || retryOn.contains("5xx") || retryOn.contains("gateway-error");
            return switch (condition) {
                case "connect-failure", "refused-stream" -> anyReset || retryOn.contains(condition);
                case "reset" -> anyReset;
                case "5xx" -> retryOn.contains("5xx") || retryOn.contains("gateway-error") && status >= 502 && status <= 504;
                default -> retryOn.contains(condition);
            };
        }

        /**
         * Whether {@code condition} is retried whatever the request's method: a connect failure and a
         * refused stream (nothing of the request was processed), a gRPC status the route names. A reset
         * and a 5xx answer are retried for idempotent methods only.
         */
        public static boolean anyMethod(String condition) {
            return !condition.equals("reset") && !condition.equals("5xx");
        }
    }

    public enum LbPolicy { ROUND_ROBIN, LEAST_REQUEST }

    /**
     * An upstream cluster.
     *
     * @param mtls whether connections to it are mTLS (an UpstreamTlsContext)
     * @param expectedSpiffeIds the URI SANs the callee must prove (empty: any identity the bundle vouches for)
     * @param sni the server name sent (the east-west gateway routes on it), if any
     * @param overprovisioningFactor Envoy's, in percent (default 140)
     */
    public record ClusterSpec(String name, LbPolicy lbPolicy, Duration connectTimeout, boolean mtls, List<String> expectedSpiffeIds,
            Optional<String> sni, List<EndpointSpec> endpoints, int overprovisioningFactor, Limits limits, Outlier outlier, boolean http2,
            List<DropOverload> drops) {

        public ClusterSpec {
            expectedSpiffeIds = List.copyOf(expectedSpiffeIds);
            endpoints = List.copyOf(endpoints);
            drops = List.copyOf(drops);
        }

        public ClusterSpec(String name, LbPolicy lbPolicy, Duration connectTimeout, boolean mtls, List<String> expectedSpiffeIds,
                Optional<String> sni, List<EndpointSpec> endpoints, int overprovisioningFactor, Limits limits, Outlier outlier, boolean http2) {
            this(name, lbPolicy, connectTimeout, mtls, expectedSpiffeIds, sni, endpoints, overprovisioningFactor, limits, outlier, http2, List.of());
        }

        /** The drop category that takes all of the traffic, if one does (the cluster's traffic is all refused). */
        public Optional<String> dropsAll() {
            return drops.stream().filter(d -> d.fraction() >= 1.0).map(DropOverload::category).findFirst();
        }

        public ClusterSpec(String name, LbPolicy lbPolicy, Duration connectTimeout, boolean mtls, List<String> expectedSpiffeIds,
                Optional<String> sni, List<EndpointSpec> endpoints, int overprovisioningFactor) {
            this(name, lbPolicy, connectTimeout, mtls, expectedSpiffeIds, sni, endpoints, overprovisioningFactor, Limits.DEFAULT, Outlier.DEFAULT,
                    false);
        }
    }

    /**
     * A share of a cluster's traffic to refuse (Envoy's {@code ClusterLoadAssignment.policy.drop_overloads}):
     * {@code fraction} from 0 to 1 of the connections (the east-west gateway) under {@code category}.
     */
    public record DropOverload(String category, double fraction) {
    }

    /**
     * Outlier detection: an endpoint with {@code consecutiveFailures} failures in a row (connect
     * failures, resets, 5xx answers) is ejected for {@code baseEjection} times its ejection
     * multiplier (at most {@code maxEjection}), as long as no more than {@code maxEjectionPercent} of
     * the cluster's endpoints are ejected (but always one). Each ejection raises the multiplier by
     * one; each {@code interval} the endpoint spends back in service lowers it by one (Envoy's
     * {@code interval} and {@code max_ejection_time}), so an endpoint that fails again soon after its
     * return stays out longer, and one that recovered starts again from the base time.
     */
    public record Outlier(int consecutiveFailures, Duration baseEjection, int maxEjectionPercent, Duration interval, Duration maxEjection) {
        public static final Outlier DEFAULT = new Outlier(5, Duration.ofSeconds(30), 10, Duration.ofSeconds(10), Duration.ofSeconds(300));
    }

    /**
     * A cluster's circuit breakers (Envoy's {@code circuit_breakers.thresholds} at DEFAULT priority,
     * with Envoy's defaults): open connections, requests in flight, retries in flight; and a retry
     * budget (retries in flight at most {@code retryBudgetPercent} of the requests in flight, but
     * always {@code minRetryConcurrency}; a negative percent: no budget, {@code maxRetries} alone).
     */
    public record Limits(int maxConnections, int maxRequests, int maxRetries, double retryBudgetPercent, int minRetryConcurrency) {
        public static final Limits DEFAULT = new Limits(1024, 1024, 3, -1, 3);
    }

    /** An endpoint of a cluster, with its locality, priority (0 is the highest), weight and health from the assignment. */
    public record EndpointSpec(InetSocketAddress address, Locality locality, int priority, int weight, boolean healthy) {
    }

    public record Locality(String region, String zone, String subZone) {
        public static final Locality NONE = new Locality("", "", "");
    }
}
