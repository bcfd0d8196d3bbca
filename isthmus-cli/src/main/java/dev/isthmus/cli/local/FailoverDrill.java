package dev.isthmus.cli.local;

import java.time.Duration;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;

/**
 * A failover drill on the local federation: steady shop traffic ({@link ShopLoad}) from some
 * regions, then a fault in one region ({@link Fault}): every process of it killed at once (SIGKILL,
 * as a power cut), then the region started again; or the region drained through its controller
 * (the federation sends it no traffic, its processes keep running), then the drain ended; or the
 * region isolated through its controller (its gateway refuses cross-region traffic and nobody is
 * told, so the callers' sidecars must find out), then the isolation ended. It measures
 * how the callers' traffic moves: from the fault to the first request served elsewhere and to the
 * last one not served elsewhere, the requests that failed, the latency p99 before, during and after,
 * and how long after the restart (or the drain's end) traffic returns.
 *
 * <p>Used by {@code isthmus drill}, the e2e test {@code ThreeRegionsIT} and {@code bench/run failover}.
 */
public final class FailoverDrill {

    /** What is done to the region. */
    public enum Fault {
        /** every process killed at once, then started again */
        KILL("killed", null, null),
        /** drained through its controller ({@code POST /api/v1/federation/drain}), then the drain ended */
        DRAIN("drained", "drain", "/api/v1/federation/drain"),
        /**
         * isolated through its controller ({@code POST /api/v1/federation/isolate}): its gateway
         * refuses cross-region traffic and closes the flows it carries; then the isolation ended
         */
        ISOLATE("isolated", "isolation", "/api/v1/federation/isolate");

        private final String participle;
        private final String hold;
        private final String path;

        Fault(String participle, String hold, String path) {
            this.participle = participle;
            this.hold = hold;
            this.path = path;
        }

        /** "killed", "drained", "isolated" */
        public String participle() {
            return participle;
        }

        /** What ends the fault, after "the": "restart", "drain ended", "isolation ended". */
        public String end() {
            return hold == null ? "restart" : hold + " ended";
        }

        /** Asked of the region's controller (a hold that ends by itself), not done to its processes. */
        boolean held() {
            return hold != null;
        }
    }

    /** What one drill measured; times in milliseconds from the fault (or from the restart for {@code backAfterRestartSeconds}). */
    public record Report(String region, Fault fault, int processesKilled, int requestsBefore, int failedBefore, double firstReroutedMs, double allReroutedMs, int failedDuring,
            int requestsDuring, Map<String, Integer> servedDuring, double p99BeforeMs, double p99DuringMs, double p99AfterMs,
            double restartSeconds, double backAfterRestartSeconds, String firstFailure) {

        public String text() {
            return String.format(Locale.ROOT, """
                    %s
                    requests failed before the fault:   %d of %d%s
                    first request served elsewhere:     %.0f ms after the fault
                    all requests served elsewhere from: %.0f ms after the fault
                    requests failed during the outage:  %d of %d%s
                    served during the outage:           %s
                    latency p99 before/during/after:    %.1f / %.1f / %.1f ms
                    %s%.1f s; traffic back on it %s
                    """, String.format(Locale.ROOT, "%-36s", "region " + fault.participle() + ":") + region
                            + (fault.held() ? " (its controller's POST " + fault.path + ")" : " (" + processesKilled + " processes, SIGKILL at once)"),
                    failedBefore, requestsBefore, fault == Fault.KILL ? " (sent before every process had exited)" : "", firstReroutedMs, allReroutedMs,
                    failedDuring, requestsDuring, firstFailure.isEmpty() ? "" : " (first: " + firstFailure + ")", servedDuring, p99BeforeMs, p99DuringMs,
                    p99AfterMs, String.format(Locale.ROOT, "%-36s", (fault.held() ? fault.end() : "region restarted") + " in:"), restartSeconds,
                    Double.isNaN(backAfterRestartSeconds) ? "NOT within the wait" : String.format(Locale.ROOT, "%.1f s after the %s",
                            backAfterRestartSeconds, fault.end()));
        }
    }

    private FailoverDrill() {
    }

    /**
     * Runs the drill: {@code rate} requests/s from {@code from} for a few seconds, then
     * {@code darkRegion} killed for {@code outage}, then started again until the traffic that it
     * served before the fault is back on it (at most {@code returnTimeout}).
     */
    public static Report run(LocalFederation federation, String darkRegion, List<String> from, int rate, Duration outage, Duration returnTimeout,
            Consumer<String> progress) throws Exception {
        return run(federation, darkRegion, from, rate, outage, returnTimeout, false, progress);
    }

    /** @param grpc order-processing calls the catalogue over gRPC (HTTP/2 POSTs between the sidecars) rather than HTTP/1.1 GETs */
    public static Report run(LocalFederation federation, String darkRegion, List<String> from, int rate, Duration outage, Duration returnTimeout,
            boolean grpc, Consumer<String> progress) throws Exception {
        return run(federation, darkRegion, from, rate, outage, returnTimeout, grpc, false, progress);
    }

    /**
     * @param drain instead of killing the region, drain it through its controller (the federation stops
     *     sending it traffic; its processes keep running) and end the drain instead of restarting it:
     *     the drill a production federation runs. The drain is asked for the outage and the return wait
     *     together, so it ends by itself if this process dies
     */
    public static Report run(LocalFederation federation, String darkRegion, List<String> from, int rate, Duration outage, Duration returnTimeout,
            boolean grpc, boolean drain, Consumer<String> progress) throws Exception {
        return run(federation, darkRegion, from, rate, outage, returnTimeout, grpc, drain ? Fault.DRAIN : Fault.KILL, progress);
    }

    /**
     * @param fault what is done to the region; a drain or an isolation is asked for the outage and the
     *     return wait together, so it ends by itself if this process dies
     */
    public static Report run(LocalFederation federation, String darkRegion, List<String> from, int rate, Duration outage, Duration returnTimeout,
            boolean grpc, Fault fault, Consumer<String> progress) throws Exception {
        var topology = federation.topology();
        if (!topology.regions().contains(darkRegion)) {
            throw new IllegalArgumentException("no region '" + darkRegion + "' in the local federation; it has " + topology.regions());
        }
        if (from.contains(darkRegion)) {
            throw new IllegalArgumentException("the traffic must come from other regions than the one killed");
        }
        var load = new ShopLoad(ShopLoad.checkoutTargets(topology, from, grpc), rate, Duration.ofSeconds(5));
        load.start();
        try {
            progress.accept("steady traffic from " + from + " at " + rate + " requests/s" + (grpc ? ", the catalogue called over gRPC" : ""));
            Thread.sleep(4000);
            // The fault is the instant every process of the region has exited: a request sent while the
            // signals were still going out could yet be answered there (seen in e2e: 1 of 480).
            boolean held = fault.held();
            var controller = !held ? null : new ControllerClient(java.net.URI.create("http://127.0.0.1:" + topology.controllerPort(darkRegion)),
                    java.nio.file.Files.readString(topology.adminTokenFile(darkRegion)).strip());
            int killed = 0;
            if (held) {
                controller.post(fault.path, "{\"duration\":\"" + outage.plus(returnTimeout).toSeconds() + "s\"}");
                progress.accept(fault.participle() + " " + darkRegion + " through its controller");
            } else {
                killed = federation.killRegion(darkRegion);
                progress.accept("killed every process of " + darkRegion + " (" + killed + ")");
            }
            long killedAt = System.nanoTime();
            Thread.sleep(outage.toMillis());
            var samples = load.samples();
            var before = ShopLoad.window(samples, load.startedAt() + TimeUnit.SECONDS.toNanos(1), killedAt);
            var during = ShopLoad.window(samples, killedAt, killedAt + outage.toNanos());
            long lastElsewhere = killedAt;
            long firstRerouted = Long.MAX_VALUE;
            String firstFailure = "";
            long firstFailureAt = Long.MAX_VALUE;
            for (var s : samples) {
                if (s.sentAt() < killedAt || s.sentAt() >= killedAt + outage.toNanos()) {
                    continue;
                }
                if (s.failed() || s.servedBy().equals(darkRegion)) {
                    lastElsewhere = Math.max(lastElsewhere, s.sentAt());
                } else {
                    firstRerouted = Math.min(firstRerouted, s.sentAt());
                }
                if (s.failed() && s.sentAt() < firstFailureAt) {
                    firstFailureAt = s.sentAt();
                    firstFailure = s.error();
                }
            }
            // who served before the fault is where the policy wants traffic: it should come back there
            long restartAt = System.nanoTime();
            if (held) {
                controller.delete(fault.path);
            } else {
                federation.startRegion(darkRegion, Duration.ofSeconds(120));
            }
            double restartSeconds = (System.nanoTime() - restartAt) / 1e9;
            progress.accept(String.format(Locale.ROOT, "%s (%.1f s); waiting for traffic to return",
                    held ? "ended the " + fault.hold + " of " + darkRegion : "started " + darkRegion + " again", restartSeconds));
            long deadline = System.nanoTime() + returnTimeout.toNanos();
            double back = Double.NaN;
            while (System.nanoTime() < deadline) {
                long now = System.nanoTime();
                var recent = ShopLoad.window(load.samples(), now - TimeUnit.SECONDS.toNanos(3), now - TimeUnit.SECONDS.toNanos(1));
                if (recent.requests() > 0 && recent.share(darkRegion) >= before.share(darkRegion) - 0.05) {
                    back = (now - TimeUnit.SECONDS.toNanos(1) - restartAt) / 1e9; // the end of the window that showed it
                    break;
                }
                Thread.sleep(250);
            }
            long afterFrom = System.nanoTime();
            Thread.sleep(3000);
            var after = ShopLoad.window(load.samples(), afterFrom - TimeUnit.SECONDS.toNanos(1), afterFrom + TimeUnit.SECONDS.toNanos(2));
            // 100% rerouted from: the first request after the last one that failed or went to the dark region (or the first rerouted)
            long allRerouted = firstRerouted == Long.MAX_VALUE ? Long.MAX_VALUE : Math.max(firstRerouted, lastElsewhere);
            return new Report(darkRegion, fault, killed, before.requests(), before.failed(), firstRerouted == Long.MAX_VALUE ? Double.NaN : (firstRerouted - killedAt) / 1e6,
                    allRerouted == Long.MAX_VALUE ? Double.NaN : (allRerouted - killedAt) / 1e6, during.failed(), during.requests(), new TreeMap<>(during.byRegion()), before.p99Millis(),
                    during.p99Millis(), after.p99Millis(), restartSeconds, back, firstFailure);
        } finally {
            load.close();
        }
    }
}
