package dev.isthmus.bench;

import dev.isthmus.cli.local.Component;
import dev.isthmus.cli.local.LocalFederation;
import java.io.IOException;
import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayList;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/**
 * {@code bench/run mesh-memory}: the resident memory of every process of the local federation
 * ({@code isthmus up}: three regions, with the same JVM options), idle, after the federation has
 * formed and then sat for {@code --idle} seconds. The sidecars are the figure issue 5 asks about as
 * the mesh runs them (xDS over ADS, mTLS, their SVIDs), where {@code bench/run proxy} measures the
 * lightest sidecar there is (a bootstrap file, no xDS, no trust bridge).
 *
 * <p>Per kind of process: RSS (min-max and mean, from {@code /proc/PID/status}), its high-water mark,
 * and the classes each JVM has loaded (from {@code jcmd PID PerfCounter.print}).
 */
final class MeshMemory {

    private MeshMemory() {
    }

    record Reading(Component component, double rssMiB, double hwmMiB, long classes) {
    }

    static int run(String[] args) throws Exception {
        int idle = 120;
        int basePort = 22700;
        for (int i = 0; i + 1 < args.length; i += 2) {
            switch (args[i]) {
                case "--idle" -> idle = Integer.parseInt(args[i + 1]);
                case "--base-port" -> basePort = Integer.parseInt(args[i + 1]);
                default -> {
                    System.err.println("mesh-memory: unknown option " + args[i] + " (--idle SECONDS, --base-port PORT)");
                    return 2;
                }
            }
        }
        try (var bench = BenchFederation.start("mesh-memory", basePort, List.of())) {
            System.err.println("mesh-memory: federated; idle for " + idle + " s");
            TimeUnit.SECONDS.sleep(idle);
            var readings = read(bench.federation());
            System.out.println(report(readings, idle, bench));
            return readings.stream().anyMatch(r -> r.rssMiB() <= 0) ? 1 : 0;
        }
    }

    static List<Reading> read(LocalFederation federation) throws IOException, InterruptedException {
        var out = new ArrayList<Reading>();
        for (var s : federation.status()) {
            if (s.pid().isEmpty()) {
                System.err.println("mesh-memory: " + s.component().id() + " is not running");
                out.add(new Reading(s.component(), 0, 0, 0));
                continue;
            }
            long pid = s.pid().get();
            long classes = s.component().kind() == Component.Kind.NATS ? 0 : loadedClasses(pid);
            out.add(new Reading(s.component(), ProxyBench.rssKiB(pid) / 1024.0, ProxyBench.statusKiB(pid, "VmHWM:") / 1024.0, classes));
        }
        return out;
    }

    /**
     * Classes loaded and not unloaded, from the JVM's performance counters, those from the class-data
     * archive included (HotSpot counts them apart); -1 when jcmd cannot tell.
     */
    private static long loadedClasses(long pid) throws IOException, InterruptedException {
        Path jcmd = Path.of(BenchFederation.java()).resolveSibling("jcmd");
        var p = new ProcessBuilder(jcmd.toString(), Long.toString(pid), "PerfCounter.print").redirectErrorStream(true).start();
        String text = new String(p.getInputStream().readAllBytes());
        if (!p.waitFor(30, TimeUnit.SECONDS) || p.exitValue() != 0) {
            return -1;
        }
        long loaded = -1;
        long others = 0;
        for (String line : text.split("\n")) {
            String value = line.substring(line.indexOf('=') + 1).strip();
            if (line.startsWith("java.cls.loadedClasses=")) {
                loaded = Long.parseLong(value);
            } else if (line.startsWith("java.cls.sharedLoadedClasses=")) {
                others += Long.parseLong(value);
            } else if (line.startsWith("java.cls.unloadedClasses=") || line.startsWith("java.cls.sharedUnloadedClasses=")) {
                others -= Long.parseLong(value);
            }
        }
        return loaded < 0 ? -1 : loaded + others;
    }

    private static String report(List<Reading> readings, int idle, BenchFederation bench) {
        var byKind = new EnumMap<Component.Kind, List<Reading>>(Component.Kind.class);
        for (var r : readings) {
            byKind.computeIfAbsent(r.component().kind(), k -> new ArrayList<>()).add(r);
        }
        var b = new StringBuilder();
        b.append("\n## The local federation's processes, idle (issue 5: the sidecars), ").append(Instant.now().toString(), 0, 16).append("\n\n");
        b.append("`isthmus up`'s three regions, read ").append(idle).append(" s after the federation formed, from /proc/PID/status (RSS, and its high-water mark")
                .append(" since start) and `jcmd PID PerfCounter.print` (classes loaded). JVM options as `isthmus up` gives them, e.g. the sidecars':\n")
                .append(readings.stream().filter(r -> r.component().kind() == Component.Kind.SIDECAR).findFirst()
                        .map(r -> "`" + String.join(" ", jvmOptions(r.component().command())) + "`").orElse("(no sidecar)"))
                .append("\n\n| processes | count | RSS min-max | RSS mean | high-water mark max | classes loaded |\n| --- | --- | --- | --- | --- | --- |\n");
        for (Map.Entry<Component.Kind, List<Reading>> e : byKind.entrySet()) {
            var list = e.getValue();
            double min = list.stream().mapToDouble(Reading::rssMiB).min().orElse(0);
            double max = list.stream().mapToDouble(Reading::rssMiB).max().orElse(0);
            double mean = list.stream().mapToDouble(Reading::rssMiB).average().orElse(0);
            double hwm = list.stream().mapToDouble(Reading::hwmMiB).max().orElse(0);
            long cmin = list.stream().mapToLong(Reading::classes).min().orElse(0);
            long cmax = list.stream().mapToLong(Reading::classes).max().orElse(0);
            b.append(String.format("| %s | %d | %.1f-%.1f MiB | %.1f MiB | %.1f MiB | %s |%n", e.getKey().name().toLowerCase().replace('_', ' '), list.size(),
                    min, max, mean, hwm, e.getKey() == Component.Kind.NATS ? "" : cmin == cmax ? Long.toString(cmin) : cmin + "-" + cmax));
        }
        b.append("\nTarget for a sidecar (issue 5): RSS <= 64 MiB idle. State and logs: ").append(bench.work()).append('\n');
        return b.toString();
    }

    /** The JVM options of a java command line: what stands between the java executable and -jar. */
    static List<String> jvmOptions(List<String> command) {
        var out = new ArrayList<String>();
        for (int i = 1; i < command.size() && !command.get(i).equals("-jar"); i++) {
            if (!command.get(i).startsWith("-Dlocal-federation.")) {
                out.add(command.get(i));
            }
        }
        return out;
    }
}
