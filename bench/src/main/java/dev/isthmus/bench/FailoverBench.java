package dev.isthmus.bench;

import dev.isthmus.cli.local.FailoverDrill;
import java.nio.file.Files;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.function.ToDoubleFunction;

/**
 * {@code bench/run failover}: the failover report of issue 8. A local federation of three regions as
 * {@code isthmus up} runs it, with product-catalog in eu-west and ap-south only (its FailoverPolicy:
 * eu-west, then ap-south); steady traffic from us-east; then {@code --runs} drills
 * ({@link FailoverDrill}), each killing every process of eu-west and starting it again. Prints each
 * run and the medians: time from the fault to the first rerouted request and to 100% rerouted,
 * requests failed, latency p99 before, during and after, and the return once eu-west is back.
 * {@code --grpc true}: order-processing calls the catalogue over gRPC. {@code --drain true}: eu-west
 * is drained through its controller instead of killed, and the drain ended instead of a restart.
 * {@code --isolate true}: eu-west is isolated through its controller (its gateway refuses
 * cross-region traffic, nobody is told), and the isolation ended instead of a restart.
 */
final class FailoverBench {

    private FailoverBench() {
    }

    static int run(String[] args) throws Exception {
        int runs = 3;
        int rate = 40;
        int outage = 15;
        boolean grpc = false;
        boolean drain = false;
        boolean isolate = false;
        int basePort = 22500;
        for (int i = 0; i + 1 < args.length; i += 2) {
            switch (args[i]) {
                case "--runs" -> runs = Integer.parseInt(args[i + 1]);
                case "--rate" -> rate = Integer.parseInt(args[i + 1]);
                case "--outage" -> outage = Integer.parseInt(args[i + 1]);
                case "--grpc" -> grpc = Boolean.parseBoolean(args[i + 1]);
                case "--drain" -> drain = Boolean.parseBoolean(args[i + 1]);
                case "--isolate" -> isolate = Boolean.parseBoolean(args[i + 1]);
                case "--base-port" -> basePort = Integer.parseInt(args[i + 1]);
                default -> {
                    System.err.println("failover: unknown option " + args[i]);
                    return 2;
                }
            }
        }
        if (drain && isolate) {
            System.err.println("failover: --drain and --isolate are two different drills; give one");
            return 2;
        }
        var fault = isolate ? FailoverDrill.Fault.ISOLATE : drain ? FailoverDrill.Fault.DRAIN : FailoverDrill.Fault.KILL;
        try (var bench = BenchFederation.start("failover", basePort, List.of("us-east/product-catalog", "us-east/product-catalog-v2"))) {
            var federation = bench.federation();
            Thread.sleep(5000); // the registries and the sidecars' routes settle
            var reports = new ArrayList<FailoverDrill.Report>();
            for (int r = 1; r <= runs; r++) {
                int run = r;
                var report = FailoverDrill.run(federation, "eu-west", List.of("us-east"), rate, Duration.ofSeconds(outage), Duration.ofSeconds(180), grpc,
                        fault, line -> System.err.println("failover: run " + run + ": " + line));
                System.err.println(report.text());
                reports.add(report);
            }
            var sb = new StringBuilder(String.format(Locale.ROOT, """
                    ## Failover under load (issue 8), %s

                    Three regions of the local federation (the processes of `isthmus up`), product-catalog in eu-west and ap-south only
                    (FailoverPolicy: eu-west, then ap-south). %d requests/s from us-east's order-processing to the catalogue through the
                    sidecars%s; %s %d s, then %s. %d runs on one federation.

                    | figure | %s median |
                    | --- | %s--- |
                    """, Instant.now().toString().substring(0, 16), rate, grpc ? " (over gRPC: `?catalog=grpc`)" : "",
                    switch (fault) {
                        case DRAIN -> "eu-west drained through its controller (`POST /api/v1/federation/drain`, nothing killed) for";
                        case ISOLATE -> "eu-west isolated through its controller (`POST /api/v1/federation/isolate`: its gateway refuses"
                                + " cross-region traffic, nobody is told, nothing killed) for";
                        case KILL -> "every process of eu-west killed at once (SIGKILL), down";
                    }, outage, fault == FailoverDrill.Fault.KILL ? "started again" : "the " + fault.end(), runs, runHeader(runs),
                    "--- | ".repeat(runs)));
            row(sb, "first request served by ap-south (ms after the fault)", reports, FailoverDrill.Report::firstReroutedMs, "%.0f");
            row(sb, "all requests served by ap-south (ms after the fault)", reports, FailoverDrill.Report::allReroutedMs, "%.0f");
            row(sb, "requests failed before the fault (in flight as it came)", reports, rep -> rep.failedBefore(), "%.0f");
            row(sb, "requests failed during the outage", reports, rep -> rep.failedDuring(), "%.0f");
            row(sb, "requests sent during the outage", reports, rep -> rep.requestsDuring(), "%.0f");
            row(sb, "latency p99 before (ms)", reports, FailoverDrill.Report::p99BeforeMs, "%.1f");
            row(sb, "latency p99 during (ms)", reports, FailoverDrill.Report::p99DuringMs, "%.1f");
            row(sb, "latency p99 after (ms)", reports, FailoverDrill.Report::p99AfterMs, "%.1f");
            if (fault == FailoverDrill.Fault.KILL) {
                row(sb, "eu-west restarted (s)", reports, FailoverDrill.Report::restartSeconds, "%.1f");
            }
            row(sb, "traffic back on eu-west (s after the " + fault.end() + ")", reports,
                    FailoverDrill.Report::backAfterRestartSeconds, "%.1f");
            String report = sb.toString();
            System.out.println();
            System.out.println(report);
            Files.writeString(BenchFederation.home().resolve("bench/target/failover.md"), report);
            return reports.stream().allMatch(rep -> rep.failedDuring() == 0) ? 0 : 1;
        }
    }

    private static String runHeader(int runs) {
        var sb = new StringBuilder();
        for (int r = 1; r <= runs; r++) {
            sb.append("run ").append(r).append(" | ");
        }
        return sb.toString();
    }

    private static void row(StringBuilder sb, String name, List<FailoverDrill.Report> reports, ToDoubleFunction<FailoverDrill.Report> f, String format) {
        sb.append("| ").append(name).append(" | ");
        var values = new ArrayList<Double>();
        for (var r : reports) {
            double v = f.applyAsDouble(r);
            values.add(v);
            sb.append(String.format(Locale.ROOT, format, v)).append(" | ");
        }
        values.sort(Double::compare);
        sb.append(String.format(Locale.ROOT, format, values.get(values.size() / 2))).append(" |\n");
    }
}
