package dev.isthmus.bench;

import com.google.protobuf.Message;
import dev.isthmus.api.registry.Endpoint;
import dev.isthmus.controller.xds.ProxyResources;
import java.lang.management.ManagementFactory;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;

/**
 * {@code bench/run xds-snapshots}: the controller's xDS resource builder at scale, in process: S
 * services × E endpoints spread over C clusters, P sidecars each with its outbound listener. Reports
 * the time to build the shared clusters and assignments (full, and incremental after one change) and
 * the P listeners (each with its own routes, and sharing their namespace's as the server does), the
 * heap they hold, and
 * the bytes a state-of-the-world push carries when one endpoint changes: everything (a full push),
 * the changed type only (what the controller's per-type content-addressed versions send), and the one
 * changed resource (what delta xDS would send; not implemented).
 */
final class XdsSnapshots {

    private XdsSnapshots() {
    }

    static int run(String[] args) throws Exception {
        int services = 1000;
        int endpoints = 10;
        int proxies = 500;
        int clusters = 3;
        int rounds = 5;
        for (int i = 0; i + 1 < args.length; i += 2) {
            switch (args[i]) {
                case "--services" -> services = Integer.parseInt(args[i + 1]);
                case "--endpoints" -> endpoints = Integer.parseInt(args[i + 1]);
                case "--proxies" -> proxies = Integer.parseInt(args[i + 1]);
                case "--clusters" -> clusters = Integer.parseInt(args[i + 1]);
                case "--rounds" -> rounds = Integer.parseInt(args[i + 1]);
                default -> {
                    System.err.println("xds-snapshots: unknown option " + args[i]);
                    return 2;
                }
            }
        }
        var inputs = inputs(services, endpoints, clusters, 0);
        // warm-up rounds: the JIT compiles the builder
        for (int r = 0; r < 2; r++) {
            build(inputs, Math.min(proxies, 50));
        }
        var clusterTimes = new ArrayList<Double>();
        var listenerTimes = new ArrayList<Double>();
        var sharedListenerTimes = new ArrayList<Double>();
        Built kept = null;
        for (int r = 0; r < rounds; r++) {
            kept = null;
            long t0 = System.nanoTime();
            var set = ProxyResources.sidecarClusters(inputs);
            long t1 = System.nanoTime();
            var listeners = new ArrayList<Message>(proxies);
            for (int p = 0; p < proxies; p++) {
                listeners.add(ProxyResources.outboundListener("127.0.0.1", 20_000 + p, "ns" + (p % 10), set, inputs.policy()));
            }
            long t2 = System.nanoTime();
            listeners = null;
            long t3 = System.nanoTime();
            var shared = sharedListeners(set, inputs, proxies);
            long t4 = System.nanoTime();
            clusterTimes.add((t1 - t0) / 1e6);
            listenerTimes.add((t2 - t1) / 1e6);
            sharedListenerTimes.add((t4 - t3) / 1e6);
            kept = new Built(set, shared);
        }
        // Heap of the listeners: built the old way (each its own routes), then sharing one namespace's routes.
        var set0 = kept.set();
        var own = new ArrayList<Message>(proxies);
        for (int p = 0; p < proxies; p++) {
            own.add(ProxyResources.outboundListener("127.0.0.1", 20_000 + p, "ns" + (p % 10), set0, inputs.policy()));
        }
        long heapOwn = usedHeapAfterGc();
        own.clear();
        long heapWith = usedHeapAfterGc();
        long clustersBytes = bytes(kept.set().clusters());
        long assignmentsBytes = bytes(kept.set().assignments());
        long listenerBytes = kept.listeners().get(0).getSerializedSize();
        int clusterCount = kept.set().clusters().size();
        var keepAlive = kept;
        kept = null;
        long heapLeftAfterRelease;
        {
            keepAlive.listeners().clear();
            heapLeftAfterRelease = usedHeapAfterGc();
        }
        long listenersHeap = heapWith - heapLeftAfterRelease;
        long ownListenersHeap = heapOwn - heapWith;

        // Incremental rebuilds: one endpoint moves back and forth; the memo rebuilds that service only.
        var memo = new ProxyResources.Memo();
        ProxyResources.sidecarClusters(inputs, memo);
        var moved = inputs(services, endpoints, clusters, 1);
        var incrementalTimes = new ArrayList<Double>();
        int rebuiltServices = 0;
        for (int r = 0; r < rounds * 4; r++) {
            long t0 = System.nanoTime();
            ProxyResources.sidecarClusters(r % 2 == 0 ? moved : inputs, memo);
            incrementalTimes.add((System.nanoTime() - t0) / 1e6);
            rebuiltServices = memo.rebuilt();
        }

        // One endpoint changes: which resources differ, and their size.
        var changed = ProxyResources.sidecarClusters(inputs(services, endpoints, clusters, 1));
        int changedClusters = 0;
        long changedClusterBytes = 0;
        for (int i = 0; i < changed.assignments().size(); i++) {
            if (!changed.assignments().get(i).equals(keepAlive.set().assignments().get(i))) {
                changedClusters++;
                changedClusterBytes += changed.assignments().get(i).getSerializedSize();
            }
        }
        boolean clustersUnchanged = changed.clusters().equals(keepAlive.set().clusters());
        long full = clustersBytes + assignmentsBytes + listenerBytes;
        String report = String.format(Locale.ROOT, """
                ## xDS snapshots at scale (issue 7), %s

                In process (the controller's builder, ProxyResources): %d services x %d endpoints over %d clusters (%d outbound
                clusters with subsets), %d sidecars in 10 namespaces each with its outbound listener (a virtual host per
                service). Medians of %d rounds after 2 warm-up rounds; heap measured after a full GC.

                | figure | value |
                | --- | --- |
                | shared clusters and assignments, full build | %.0f ms |
                | the same after one endpoint changed, incremental (%d service rebuilt, the rest reused) | %.1f ms |
                | %d outbound listeners, each building its own routes | %.0f ms (%.2f ms each) |
                | %d outbound listeners sharing their namespace's routes (what the server does) | %.0f ms |
                | heap held by the %d listeners, each its own routes | %.1f MiB (%.0f KiB each) |
                | heap held by the %d listeners, routes shared per namespace | %.1f MiB (%.1f KiB each) |
                | heap in use with everything built (shared routes) | %.1f MiB |
                | one sidecar's full push (Clusters %.1f KiB + ClusterLoadAssignments %.1f KiB + Listener %.1f KiB) | %.1f KiB |
                | one endpoint changes: what differs | %d assignment(s)%s |
                | pushed per sidecar now (state of the world, only the changed type: every assignment) | %.1f KiB |
                | pushed per sidecar with delta xDS (the changed assignment only; not implemented) | %.2f KiB |
                """, Instant.now().toString().substring(0, 16), services, endpoints, clusters, clusterCount, proxies, rounds,
                median(clusterTimes), rebuiltServices, median(incrementalTimes), proxies, median(listenerTimes), median(listenerTimes) / proxies,
                proxies, median(sharedListenerTimes), proxies, ownListenersHeap / 1048576.0, ownListenersHeap / 1024.0 / proxies, proxies,
                listenersHeap / 1048576.0, listenersHeap / 1024.0 / proxies, heapWith / 1048576.0, clustersBytes / 1024.0, assignmentsBytes / 1024.0,
                listenerBytes / 1024.0, full / 1024.0, changedClusters, clustersUnchanged ? ", no cluster, no listener" : " and clusters",
                assignmentsBytes / 1024.0, changedClusterBytes / 1024.0);
        System.out.println();
        System.out.println(report);
        Path out = BenchFederation.home().resolve("bench/target/xds-snapshots.md");
        Files.createDirectories(out.getParent());
        Files.writeString(out, report);
        return 0;
    }

    private record Built(ProxyResources.ClusterSet set, List<Message> listeners) {
    }

    private static void build(ProxyResources.Inputs inputs, int proxies) {
        var set = ProxyResources.sidecarClusters(inputs);
        for (int p = 0; p < proxies; p++) {
            ProxyResources.outboundListener("127.0.0.1", 20_000 + p, "ns0", set, inputs.policy());
        }
        sharedListeners(set, inputs, proxies);
    }

    /** As the xDS server builds them: one namespace's routes once, each sidecar's listener around them. */
    private static List<Message> sharedListeners(ProxyResources.ClusterSet set, ProxyResources.Inputs inputs, int proxies) {
        var routes = new java.util.HashMap<String, com.google.protobuf.Any>();
        var out = new ArrayList<Message>(proxies);
        for (int p = 0; p < proxies; p++) {
            var hcm = routes.computeIfAbsent("ns" + (p % 10), n -> ProxyResources.outboundRoutes(n, set, inputs.policy()));
            out.add(ProxyResources.outboundListener("127.0.0.1", 20_000 + p, hcm));
        }
        return out;
    }

    /** Services spread over namespaces; each has endpoints in every cluster; {@code variant} moves one endpoint. */
    static ProxyResources.Inputs inputs(int services, int endpoints, int clusters, int variant) {
        var local = new ArrayList<Endpoint>();
        var remote = new TreeMap<String, List<Endpoint>>();
        var peers = new TreeMap<String, ProxyResources.Peer>();
        for (int c = 0; c < clusters; c++) {
            String cluster = "region-" + c;
            var list = c == 0 ? local : remote.computeIfAbsent(cluster, k -> new ArrayList<>());
            if (c > 0) {
                peers.put(cluster, new ProxyResources.Peer(cluster, cluster, "zone-a", "10.0." + c + ".1:15443"));
            }
            for (int s = 0; s < services; s++) {
                String service = "ns" + (s % 10) + "/svc-" + s;
                for (int e = 0; e < endpoints; e++) {
                    if (e % clusters != c) {
                        continue;
                    }
                    int port = 15006 + (variant == 1 && c == 0 && s == 0 && e == 0 ? 1 : 0);
                    list.add(new Endpoint(service, "svc-" + s + "-" + e, cluster, "10." + c + "." + (s / 250) + "." + (s % 250 + e), port, "http",
                            Map.of("version", e % 2 == 0 ? "v1" : "v2"), cluster, "zone-a", true, 1,
                            "spiffe://" + cluster + ".acme.isthmus/ns/ns" + (s % 10) + "/sa/svc-" + s));
                }
            }
        }
        return new ProxyResources.Inputs("region-0", "region-0", "zone-a", local, Map.copyOf(remote), Map.copyOf(peers));
    }

    private static long bytes(List<? extends Message> messages) {
        long total = 0;
        for (Message m : messages) {
            total += m.getSerializedSize();
        }
        return total;
    }

    private static long usedHeapAfterGc() throws InterruptedException {
        var memory = ManagementFactory.getMemoryMXBean();
        for (int i = 0; i < 3; i++) {
            System.gc();
            Thread.sleep(100);
        }
        return memory.getHeapMemoryUsage().getUsed();
    }

    private static double median(List<Double> values) {
        var sorted = new ArrayList<>(values);
        sorted.sort(Double::compare);
        return sorted.get(sorted.size() / 2);
    }
}
