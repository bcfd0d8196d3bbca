package dev.isthmus.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.isthmus.cli.local.ControllerClient;
import dev.isthmus.cli.local.LocalFederation;
import dev.isthmus.cli.local.LocalFederationException;
import dev.isthmus.cli.local.Topology;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.time.Instant;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/**
 * {@code isthmus status}: the local federation at a glance. Its processes and their health; then,
 * as each region's controller and trust bridge see it: the clusters and their state with the policy
 * commit each runs, the services and the clusters where they have healthy endpoints, and the
 * certificates (trust roots and each sidecar's workload certificate) with their expiry. A region
 * that does not answer is said so, and the rest is shown.
 */
@Command(name = "status", description = {"Show the local federation: processes and their health, clusters and their state with the policy",
        "SHA each runs, services and where they run, certificates and their expiry."})
final class StatusCommand implements Callable<Integer> {

    private static final ObjectMapper JSON = new ObjectMapper();
    private static final HttpClient HTTP = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(2)).build();

    @Mixin
    LocalOptions local;

    @Option(names = "--processes", description = "Only the processes table.")
    boolean processesOnly;

    @Override
    public Integer call() throws Exception {
        LocalFederation federation;
        try {
            federation = local.recorded();
        } catch (LocalFederationException e) {
            System.err.println(e.getMessage());
            return 3;
        }
        var table = new Table("REGION", "COMPONENT", "PID", "STATE", "URL");
        int unhealthy = 0;
        for (var s : federation.status()) {
            String state = !s.alive() ? "stopped" : s.ready() ? "ready" : "not-ready";
            if (!s.ready()) {
                unhealthy++;
            }
            table.row(s.component().region(), s.component().name(), s.pid().map(String::valueOf).orElse("-"), state, s.component().url());
        }
        System.out.print(table.render());
        if (!processesOnly) {
            var topology = federation.topology();
            clusters(federation, topology);
            services(federation, topology);
            certificates(federation, topology);
        }
        return unhealthy == 0 ? 0 : 3;
    }

    /** Each cluster as every controller sees it, with the policy SHA it runs. */
    private static void clusters(LocalFederation federation, Topology topology) {
        System.out.println();
        System.out.println("CLUSTERS (as each region's controller sees them; POLICY: the commit each runs)");
        var table = new Table("SEEN-FROM", "CLUSTER", "REGION", "STATE", "POLICY", "LAST-HEARTBEAT");
        for (String region : topology.regions()) {
            try {
                ControllerClient client = federation.controller(region);
                var policy = new TreeMap<String, String>();
                for (var c : client.get("/api/v1/policy/status").path("clusters")) {
                    policy.put(c.path("cluster").asText(), c.path("sha").asText());
                }
                for (var c : client.get("/api/v1/clusters")) {
                    String name = c.path("name").asText();
                    String sha = policy.getOrDefault(name, "");
                    table.row(region, name, c.path("region").asText(), c.path("state").asText(), sha.isEmpty() ? "-" : sha.substring(0, Math.min(12,
                            sha.length())), c.path("lastHeartbeat").asText("-"));
                }
            } catch (Exception e) {
                table.row(region, "-", "-", "controller does not answer: " + message(e), "-", "-");
            }
        }
        System.out.print(table.render());
    }

    /** Services and the clusters holding healthy endpoints of them, from the first controller that answers. */
    private static void services(LocalFederation federation, Topology topology) {
        System.out.println();
        for (String region : topology.regions()) {
            try {
                var services = federation.controller(region).get("/api/v1/services");
                System.out.println("SERVICES (seen from " + region + "; per cluster: healthy/registered endpoints)");
                var table = new Table("SERVICE", "RUNS-IN");
                for (var s : services) {
                    var where = new StringBuilder();
                    var clusters = new TreeSet<String>();
                    s.path("clusters").fieldNames().forEachRemaining(clusters::add);
                    for (String cluster : clusters) {
                        int healthy = 0;
                        int total = 0;
                        for (var e : s.path("clusters").path(cluster)) {
                            total++;
                            if (e.path("endpoint").path("healthy").asBoolean()) {
                                healthy++;
                            }
                        }
                        where.append(where.isEmpty() ? "" : "  ").append(cluster).append(' ').append(healthy).append('/').append(total);
                    }
                    table.row(s.path("service").asText(), where.toString());
                }
                System.out.print(table.render());
                return;
            } catch (Exception e) {
                System.out.println("(the controller of " + region + " does not answer: " + message(e) + ")");
            }
        }
    }

    /** Trust roots of each region's bridge and every sidecar's workload certificate, with their expiry. */
    private static void certificates(LocalFederation federation, Topology topology) throws Exception {
        System.out.println();
        System.out.println("CERTIFICATES");
        var table = new Table("REGION", "HOLDER", "KIND", "SUBJECT", "NOT-AFTER", "EXPIRES-IN");
        Instant now = Instant.now();
        for (String region : topology.regions()) {
            try {
                var rotation = federation.trustBridge(region).get("/api/v1/trust/rotation");
                for (var r : rotation.path("roots")) {
                    table.row(region, "trust-bridge", r.path("signing").asBoolean() ? "root (signing)" : "root",
                            rotation.path("trustDomain").asText() + " #" + r.path("serial").asText(), r.path("notAfter").asText(),
                            expiresIn(now, r.path("notAfter").asText()));
                }
            } catch (Exception e) {
                table.row(region, "trust-bridge", "root", "does not answer: " + message(e), "-", "-");
            }
            for (String deployment : Topology.SHOP_DEPLOYMENTS) {
                if (!topology.runs(region, deployment)) {
                    continue;
                }
                String holder = "sidecar-" + deployment;
                try {
                    JsonNode dump = JSON.readTree(HTTP.send(HttpRequest.newBuilder(URI.create("http://" + Topology.HOST + ":"
                            + topology.sidecarAdminPort(region, deployment) + "/config_dump")).timeout(Duration.ofSeconds(2)).build(),
                            HttpResponse.BodyHandlers.ofString()).body());
                    var svid = dump.path("svid");
                    if (svid.has("spiffe_id")) {
                        table.row(region, holder, "workload", svid.path("spiffe_id").asText(), svid.path("not_after").asText(),
                                expiresIn(now, svid.path("not_after").asText()));
                    } else {
                        table.row(region, holder, "workload", "none: " + svid.path("error").asText("-"), "-", "-");
                    }
                } catch (Exception e) {
                    table.row(region, holder, "workload", "does not answer: " + message(e), "-", "-");
                }
            }
        }
        System.out.print(table.render());
    }

    private static String expiresIn(Instant now, String notAfter) {
        try {
            var left = Duration.between(now, Instant.parse(notAfter));
            if (left.isNegative()) {
                return "EXPIRED";
            }
            return left.toDays() >= 2 ? left.toDays() + "d" : left.toHours() >= 2 ? left.toHours() + "h" : left.toMinutes() + "m";
        } catch (RuntimeException e) {
            return "?";
        }
    }

    private static String message(Exception e) {
        String m = e.getMessage();
        return m == null ? e.getClass().getSimpleName() : m.length() > 60 ? m.substring(0, 60) + "..." : m;
    }
}
