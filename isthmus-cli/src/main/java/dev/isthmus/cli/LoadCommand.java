package dev.isthmus.cli;

import dev.isthmus.cli.local.ShopLoad;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/**
 * {@code isthmus load}: steady traffic through the local federation's shop ({@link ShopLoad}),
 * printing every second the requests per serving region, the failures and latency percentiles.
 */
@Command(name = "load", description = {"Call the shop at a steady rate through the sidecars (order-processing's checkout, which calls the",
        "catalogue) and print, every second, requests per serving region, failures and latency percentiles."})
final class LoadCommand implements Callable<Integer> {

    @Mixin
    LocalOptions local;

    @Option(names = "--rate", defaultValue = "50", description = "Requests per second, all regions together (default ${DEFAULT-VALUE}).")
    int rate;

    @Option(names = "--regions", split = ",", description = "Regions whose order-processing is called (default: the first region).")
    List<String> regions;

    @Option(names = "--duration", defaultValue = "0", description = "Seconds to run; 0 runs until interrupted (default ${DEFAULT-VALUE}).")
    int duration;

    @Option(names = "--timeout", defaultValue = "5", description = "Seconds a request may take before it counts as failed (default ${DEFAULT-VALUE}).")
    int timeout;

    @Override
    public Integer call() throws Exception {
        dev.isthmus.cli.local.Topology topology;
        try {
            topology = local.recorded().topology();
        } catch (dev.isthmus.cli.local.LocalFederationException e) {
            System.err.println("isthmus load: " + e.getMessage());
            return 1;
        }
        List<String> from = regions == null ? List.of(topology.regions().get(0)) : regions;
        ShopLoad load;
        try {
            load = new ShopLoad(ShopLoad.checkoutTargets(topology, from), rate, Duration.ofSeconds(timeout));
        } catch (IllegalArgumentException e) {
            System.err.println("isthmus load: " + e.getMessage());
            return 2;
        }
        var header = new ArrayList<String>(List.of("  SECOND", "SENT/S"));
        topology.regions().forEach(r -> header.add(r.toUpperCase(Locale.ROOT)));
        header.addAll(List.of("FAILED", "P50 MS", "P99 MS"));
        String format = "%8s %7s" + " %9s".repeat(topology.regions().size()) + " %7s %8s %8s%n";
        System.out.printf("calling order-processing in %s at %d requests/s; each answer names the catalogue's region (Ctrl-C stops)%n", from, rate);
        System.out.printf(format, header.toArray());
        Thread main = Thread.currentThread();
        var reported = new java.util.concurrent.CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            // Ctrl-C: let the main thread print the totals, then the JVM goes (it cannot wait for main's own exit)
            main.interrupt();
            try {
                reported.await(8, java.util.concurrent.TimeUnit.SECONDS);
            } catch (InterruptedException ignored) {
                // leaving anyway
            }
        }));
        load.start();
        long start = load.startedAt();
        int second = 0;
        var totals = new ShopLoad.Totals();
        try {
            while (duration == 0 || second < duration) {
                // a second is printed once its answers are in (one second later, or at the timeout for the slow ones)
                Thread.sleep(Math.max(0, (start + (second + 2) * 1_000_000_000L - System.nanoTime()) / 1_000_000));
                long to = start + (second + 1) * 1_000_000_000L;
                var done = load.drainSentBefore(to); // what is reported leaves the load: memory stays flat however long it runs
                totals.addAll(done);
                print(format, topology.regions(), second + 1, ShopLoad.window(done, start + second * 1_000_000_000L, to));
                second++;
            }
        } catch (InterruptedException stopped) {
            // Ctrl-C: the totals follow
        }
        load.close();
        totals.addAll(load.drainSentBefore(Long.MAX_VALUE));
        var all = totals.window();
        System.out.println();
        print(format, topology.regions(), 0, all);
        System.out.printf("total: %d requests, %d failed (%.2f%%)%n", all.requests(), all.failed(),
                all.requests() == 0 ? 0 : 100.0 * all.failed() / all.requests());
        System.out.flush();
        reported.countDown();
        return all.failed() == 0 ? 0 : 1;
    }

    private static void print(String format, List<String> regions, int second, ShopLoad.Window w) {
        var row = new ArrayList<Object>();
        row.add(second == 0 ? "all" : Integer.toString(second));
        row.add(Integer.toString(w.requests()));
        regions.forEach(r -> row.add(Integer.toString(w.byRegion().getOrDefault(r, 0))));
        row.add(Integer.toString(w.failed()));
        row.add(String.format(Locale.ROOT, "%.1f", w.p50Millis()));
        row.add(String.format(Locale.ROOT, "%.1f", w.p99Millis()));
        System.out.printf(format, row.toArray());
    }
}
