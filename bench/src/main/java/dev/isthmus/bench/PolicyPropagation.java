package dev.isthmus.bench;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.isthmus.xds.google.protobuf.Struct;
import dev.isthmus.xds.google.protobuf.Value;
import dev.isthmus.cli.local.PolicyClone;
import dev.isthmus.proxy.config.xds.AdsClient;
import dev.isthmus.proxy.config.xds.ProxyConfig;
import dev.isthmus.xds.envoy.config.core.v3.Locality;
import dev.isthmus.xds.envoy.config.core.v3.Node;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.TreeMap;
import java.util.concurrent.ThreadLocalRandom;
import java.util.regex.Pattern;

/**
 * {@code bench/run policy-propagation}: commit-to-applied latency of a traffic policy across a local
 * federation of three regions (the same processes as {@code isthmus up}: a nats-server, controller,
 * trust bridge, gateway and the shop's sidecars per region, joined through the REST join flow, every
 * controller watching the same bare Git repository).
 *
 * <p>The proxies measured are {@code --proxies} ADS clients (proxy-core's {@link AdsClient}, the one
 * the sidecars run: it translates each response and acknowledges it), spread over the three
 * controllers, each asking for an outbound listener like a sidecar. Each commit changes the
 * catalogue's canary weights in a clone and pushes it; a proxy has applied the commit when the
 * catalogue's route it applied carries the new weights. Latency is from the push having completed
 * (polling mode) or from the signed push event being sent to one controller (webhook mode) to that
 * moment, per proxy and commit. Polling commits are made at a random moment of the 5 s poll interval.
 * The shop's own sidecars are checked in sync at the end.
 */
final class PolicyPropagation {

    private static final ObjectMapper JSON = new ObjectMapper();
    private static final HttpClient HTTP = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(2)).build();
    private static final List<String> REGIONS = BenchFederation.REGIONS;
    private static final Pattern WEIGHTS = Pattern.compile("weight: \\d+(\\n\\s+- subset: v2\\n\\s+)weight: \\d+");

    private int proxies = 50;
    private int commits = 10;
    private int basePort = 22000;

    /** One measured proxy: the canary weight of v2 it runs, and when it last changed. */
    private static final class Probe {
        final String region;
        volatile int v2 = -1;
        volatile long changedAt;
        AdsClient client;

        Probe(String region) {
            this.region = region;
        }
    }

    static int run(String[] args) throws Exception {
        var b = new PolicyPropagation();
        for (int i = 0; i + 1 < args.length; i += 2) {
            switch (args[i]) {
                case "--proxies" -> b.proxies = Integer.parseInt(args[i + 1]);
                case "--commits" -> b.commits = Integer.parseInt(args[i + 1]);
                case "--base-port" -> b.basePort = Integer.parseInt(args[i + 1]);
                default -> {
                    System.err.println("policy-propagation: unknown option " + args[i]);
                    return 2;
                }
            }
        }
        try (var bench = BenchFederation.start("policy-propagation", b.basePort, List.of())) {
            return b.go(bench);
        }
    }

    private int go(BenchFederation bench) throws Exception {
        var topology = bench.topology();

        var probes = new ArrayList<Probe>();
        var meters = new SimpleMeterRegistry();
        for (int i = 0; i < proxies; i++) {
            String region = REGIONS.get(i % REGIONS.size());
            var probe = new Probe(region);
            var metadata = Struct.newBuilder().putFields("ISTHMUS_PROXY_TYPE", Value.newBuilder().setStringValue("sidecar").build())
                    .putFields("ISTHMUS_OUTBOUND_ADDRESS", Value.newBuilder().setStringValue("127.0.0.1:" + (40000 + i)).build()).build();
            var node = Node.newBuilder().setId("bench-proxy-" + i).setCluster("shop/bench-client")
                    .setLocality(Locality.newBuilder().setRegion(region)).setMetadata(metadata).build();
            probe.client = new AdsClient("127.0.0.1:" + topology.controllerXdsPort(region), node, null, config -> observe(probe, config), meters);
            probe.client.start();
            probes.add(probe);
        }

        var clone = PolicyClone.of(topology, bench.work().resolve("clone"));
        Path file = clone.dir().resolve("shop/product-catalog.yaml");

        awaitAll(probes, 10, Duration.ofSeconds(120), "the example's 90/10 canary");
        var latencies = new TreeMap<String, List<Double>>();
        int v2 = 10;
        for (String mode : List.of("webhook", "polling")) {
            var all = new ArrayList<Double>();
            for (int k = 0; k < commits; k++) {
                if (mode.equals("polling")) {
                    // at a random moment of the poll interval: right after a poll, the commit would always wait for the next one
                    Thread.sleep(ThreadLocalRandom.current().nextLong(5000));
                }
                v2 = v2 >= 40 ? 11 : v2 + 1;
                String text = Files.readString(file);
                var m = WEIGHTS.matcher(text);
                if (!m.find()) {
                    throw new IllegalStateException(file + ": the canary's weights are not where the benchmark expects them");
                }
                String sha = clone.commitAndPush("shop/product-catalog.yaml", m.replaceFirst("weight: " + (100 - v2) + "$1weight: " + v2),
                        "canary v2 at " + v2 + "% (" + mode + " " + k + ")");
                long t0 = System.nanoTime();
                if (mode.equals("webhook")) {
                    clone.notify("us-east", sha);
                }
                awaitAll(probes, v2, Duration.ofSeconds(30), sha);
                for (Probe p : probes) {
                    double s = (p.changedAt - t0) / 1e9;
                    all.add(s);
                    latencies.computeIfAbsent(mode + " " + p.region, r -> new ArrayList<>()).add(s);
                }
                System.err.printf(Locale.ROOT, "policy-propagation: %s commit %d (%s): every proxy after %.3f s%n", mode, k + 1,
                        sha.substring(0, 8), all.subList(all.size() - probes.size(), all.size()).stream().mapToDouble(d -> d).max().orElse(0));
                Thread.sleep(300);
            }
            latencies.put(mode, all);
        }
        int sidecars = 0;
        int inSync = 0;
        for (String region : REGIONS) {
            for (JsonNode proxy : JSON.readTree(get("http://127.0.0.1:" + topology.controllerPort(region) + "/api/v1/xds/status"))) {
                if (!proxy.path("service").asText().equals("shop/bench-client") && proxy.path("type").asText().equals("sidecar")) {
                    sidecars++;
                    if (proxy.path("inSync").asBoolean()) {
                        inSync++;
                    }
                }
            }
        }
        probes.forEach(p -> p.client.close());

        var sb = new StringBuilder(String.format(Locale.ROOT, """
                ## Policy commit to applied (issue 7), %s

                A local federation of 3 regions (us-east, eu-west, ap-south: 36 processes, every controller watching one bare
                Git repository, polling every 5 s), %d proxies (proxy-core's ADS client, as in the sidecars, %d per controller)
                and the shop's %d sidecars. %d commits per mode, each changing the catalogue's canary weights; latency per
                proxy and commit, from the push (polling; each commit at a random moment of the poll interval) or the signed
                push event sent to us-east's controller (webhook) to the proxy having applied the new weights.

                | mode | samples | p50 | p99 | max |
                | --- | --- | --- | --- | --- |
                """, Instant.now().toString().substring(0, 16), proxies, (proxies + 2) / 3, sidecars, commits));
        for (String mode : List.of("webhook", "polling")) {
            var l = latencies.get(mode);
            sb.append(String.format(Locale.ROOT, "| %s | %d | %.3f s | %.3f s | %.3f s |%n", mode, l.size(), pct(l, 50), pct(l, 99), pct(l, 100)));
            for (String region : REGIONS) {
                var r = latencies.get(mode + " " + region);
                sb.append(String.format(Locale.ROOT, "| %s, proxies of %s | %d | %.3f s | %.3f s | %.3f s |%n", mode, region, r.size(), pct(r, 50),
                        pct(r, 99), pct(r, 100)));
            }
        }
        sb.append(String.format(Locale.ROOT, "%nThe shop's sidecars in sync with their controllers at the end: %d of %d.%n", inSync, sidecars));
        String report = sb.toString();
        System.out.println();
        System.out.println(report);
        Path out = BenchFederation.home().resolve("bench/target/policy-propagation.md");
        Files.writeString(out, report);
        return inSync == sidecars ? 0 : 1;
    }

    /** Records the v2 weight of the catalogue's first route in the outbound listener the proxy applied. */
    private static void observe(Probe probe, ProxyConfig config) {
        for (var l : config.listeners()) {
            if (l.http().isEmpty()) {
                continue;
            }
            for (var vh : l.http().get().virtualHosts()) {
                if (!vh.domains().contains("product-catalog.shop.svc.cluster.local") || vh.routes().isEmpty()) {
                    continue;
                }
                int weight = 0;
                for (var c : vh.routes().get(0).clusters()) {
                    if (c.cluster().contains("|v2|")) {
                        weight = c.weight();
                    }
                }
                if (weight != probe.v2) {
                    probe.changedAt = System.nanoTime();
                    probe.v2 = weight;
                }
                return;
            }
        }
    }

    private static void awaitAll(List<Probe> probes, int v2, Duration timeout, String what) throws InterruptedException {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (probes.stream().anyMatch(p -> p.v2 != v2)) {
            if (System.nanoTime() > deadline) {
                long behind = probes.stream().filter(p -> p.v2 != v2).count();
                throw new IllegalStateException(behind + " of " + probes.size() + " proxies did not apply " + what + " within " + timeout.toSeconds()
                        + " s (first: " + probes.stream().filter(p -> p.v2 != v2).findFirst().map(p -> p.region + " v2=" + p.v2 + " "
                                + p.client.lastError()).orElse("") + ")");
            }
            Thread.sleep(2);
        }
    }

    private static String get(String url) throws Exception {
        return HTTP.send(HttpRequest.newBuilder(URI.create(url)).timeout(Duration.ofSeconds(5)).build(), HttpResponse.BodyHandlers.ofString()).body();
    }

    private static double pct(List<Double> values, int p) {
        var sorted = new ArrayList<>(values);
        sorted.sort(Double::compare);
        int i = (int) Math.ceil(p / 100.0 * sorted.size()) - 1;
        return sorted.get(Math.max(0, Math.min(sorted.size() - 1, i)));
    }
}
