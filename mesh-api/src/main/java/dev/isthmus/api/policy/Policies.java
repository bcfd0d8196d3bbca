package dev.isthmus.api.policy;

import java.time.Duration;
import java.util.List;
import java.util.Optional;

/**
 * The policy resources (DESIGN.md, "Global traffic policy from Git"), as read from YAML of the form
 * {@code apiVersion: isthmus.dev/v1alpha1}, {@code kind}, {@code metadata: {name, namespace}},
 * {@code spec}. JSON Schemas of the YAML are in {@code mesh-api/src/main/resources/schemas/}; the
 * rules they cannot say are in {@link PolicyValidator}.
 */
public final class Policies {

    private Policies() {
    }

    public static final String API_VERSION = "isthmus.dev/v1alpha1";

    /** Where a resource came from: file (relative to the policy directory) and line of its document. */
    public record Origin(String file, int line) {
        @Override
        public String toString() {
            return file + ":" + line;
        }
    }

    /** {@code namespace/name} of a resource, and where it was read. */
    public record Meta(String name, String namespace, Origin origin) {
    }

    /** Routing for one service: ordered routes (the first that matches wins), breakers, outlier detection. */
    public record TrafficPolicy(Meta meta, String service, List<Route> routes, Optional<CircuitBreaker> circuitBreaker,
            Optional<OutlierDetection> outlierDetection) {
    }

    /** A path match: one of prefix, exact or regex. */
    public record PathMatch(String prefix, String exact, String regex) {
    }

    /** A header match: exact value, or present when {@code exact} is null. */
    public record HeaderMatch(String name, String exact) {
    }

    public record Match(Optional<PathMatch> path, List<HeaderMatch> headers, Optional<String> method) {
    }

    /** Where a share of the traffic goes: a subset (empty: every version), optionally only the endpoints in one cluster. */
    public record Destination(String subset, Optional<String> cluster, int weight) {
    }

    /** Retries: attempts after the first, on these conditions, capped by a budget (percent of active requests). */
    public record Retries(int attempts, List<String> on, Optional<Integer> budgetPercent) {
    }

    public record Route(String name, Match match, List<Destination> destinations, Optional<Duration> timeout, Optional<Retries> retries) {
    }

    public record CircuitBreaker(int maxConnections, int maxPendingRequests, int maxRequests) {
    }

    public record OutlierDetection(int consecutiveErrors, Duration baseEjectionTime, int maxEjectionPercent) {
    }

    /** Failover for one service: regions in order ({@code ordered}), or nearest first ({@code locality}). */
    public record FailoverPolicy(Meta meta, String service, String mode, List<String> regions) {
    }

    /** Allow or deny requests to one service (every service of the namespace when {@code service} is empty). */
    public record AuthorizationPolicy(Meta meta, String service, String action, List<Rule> rules) {
    }

    /** A rule matches when one of {@code from} and one of {@code to} match (an empty list matches anything). */
    public record Rule(List<Source> from, List<Operation> to) {
    }

    /** A caller: an exact SPIFFE ID, or any workload of a trust domain. */
    public record Source(String principal, String trustDomain) {
    }

    /** Methods (empty: any) and paths ({@code /x} exact, {@code /x*} prefix; empty: any). */
    public record Operation(List<String> methods, List<String> paths) {
    }

    /** Mesh-wide: mTLS mode, and per cluster the services it exports (no entry: all of them). */
    public record MeshPolicy(Meta meta, String mtls, List<Export> exports) {
    }

    public record Export(String cluster, List<String> services) {
    }

    /** Every accepted resource of one commit. */
    public record Bundle(List<TrafficPolicy> traffic, List<FailoverPolicy> failover, List<AuthorizationPolicy> authorization,
            List<MeshPolicy> mesh) {

        public static final Bundle EMPTY = new Bundle(List.of(), List.of(), List.of(), List.of());

        public Optional<TrafficPolicy> trafficFor(String service) {
            return traffic.stream().filter(t -> t.service().equals(service)).findFirst();
        }

        public Optional<FailoverPolicy> failoverFor(String service) {
            return failover.stream().filter(f -> f.service().equals(service)).findFirst();
        }

        public int size() {
            return traffic.size() + failover.size() + authorization.size() + mesh.size();
        }
    }
}
