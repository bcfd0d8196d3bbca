package dev.isthmus.cli.local;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.regex.Pattern;

/**
 * Cuts one region's NATS gateway links, and only them, with iptables on the loopback interface (its
 * services, its sidecars' traffic and its own NATS clients keep running): a partition of the
 * control plane between regions. Packets are dropped silently, as a broken network does.
 *
 * <p>The rules live in their own chain, {@code ISTHMUS-PART-<region>}, jumped to from INPUT:
 * <ul>
 *   <li>everything to or from the region's gateway port (the links other regions opened to it);</li>
 *   <li>the links the region's nats-server opened to the other regions' gateway ports, by their
 *       source ports (read with {@code ss});</li>
 *   <li>new connections to the other regions' gateway ports (the region's reconnection attempts;
 *       links already up between the other regions are not touched).</li>
 * </ul>
 * {@link #heal} deletes the chain. Needs root and iptables.
 */
public final class NatsPartition implements AutoCloseable {

    private static final Pattern LOCAL_PORT = Pattern.compile("^\\S+\\s+\\S+\\s+\\S+:(\\d+)\\s+\\S+:(\\d+)");

    private final String chain;
    private boolean cut;

    private NatsPartition(String chain) {
        this.chain = chain;
    }

    /** Cuts {@code region}'s gateway links in {@code federation}. */
    public static NatsPartition cut(LocalFederation federation, String region) throws IOException, InterruptedException {
        var topology = federation.topology();
        int own = topology.port(region, Topology.NATS_GATEWAY);
        var others = new ArrayList<Integer>();
        for (String r : topology.regions()) {
            if (!r.equals(region)) {
                others.add(topology.port(r, Topology.NATS_GATEWAY));
            }
        }
        var nats = topology.components().stream().filter(c -> c.region().equals(region) && c.kind() == Component.Kind.NATS).findFirst()
                .flatMap(federation::ourProcess).orElseThrow(() -> new IllegalStateException(region + "'s nats-server is not running"));
        var partition = new NatsPartition("ISTHMUS-PART-" + region);
        partition.heal(); // a chain left by an earlier run
        partition.cut = true;
        iptables("-N", partition.chain);
        iptables("-A", partition.chain, "-p", "tcp", "--dport", Integer.toString(own), "-j", "DROP");
        iptables("-A", partition.chain, "-p", "tcp", "--sport", Integer.toString(own), "-j", "DROP");
        for (int port : others) {
            for (int local : outboundLinks(nats.pid(), port)) {
                iptables("-A", partition.chain, "-p", "tcp", "--sport", Integer.toString(local), "--dport", Integer.toString(port), "-j", "DROP");
                iptables("-A", partition.chain, "-p", "tcp", "--sport", Integer.toString(port), "--dport", Integer.toString(local), "-j", "DROP");
            }
            iptables("-A", partition.chain, "-p", "tcp", "--syn", "--dport", Integer.toString(port), "-j", "DROP");
        }
        iptables("-I", "INPUT", "-j", partition.chain);
        return partition;
    }

    /** Local ports of {@code pid}'s established connections to port {@code remote} on loopback. */
    private static List<Integer> outboundLinks(long pid, int remote) throws IOException, InterruptedException {
        String out = run(List.of("ss", "-tnpH", "state", "established", "( dport = :" + remote + " )"));
        var ports = new ArrayList<Integer>();
        for (String line : out.split("\n")) {
            if (!line.contains("pid=" + pid + ",")) {
                continue;
            }
            var m = LOCAL_PORT.matcher(line.strip());
            if (m.find()) {
                ports.add(Integer.parseInt(m.group(1)));
            }
        }
        return ports;
    }

    /** Puts the links back: deletes the chain (nothing if there is none). */
    public void heal() throws IOException, InterruptedException {
        runQuietly(List.of("iptables", "-D", "INPUT", "-j", chain));
        runQuietly(List.of("iptables", "-F", chain));
        runQuietly(List.of("iptables", "-X", chain));
        cut = false;
    }

    @Override
    public void close() throws IOException, InterruptedException {
        if (cut) {
            heal();
        }
    }

    private static void iptables(String... args) throws IOException, InterruptedException {
        var command = new ArrayList<>(List.of("iptables"));
        command.addAll(List.of(args));
        run(command);
    }

    private static String run(List<String> command) throws IOException, InterruptedException {
        var p = new ProcessBuilder(command).redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        if (!p.waitFor(10, TimeUnit.SECONDS) || p.exitValue() != 0) {
            throw new IOException(String.join(" ", command) + " failed (root and iptables are needed): " + out.strip());
        }
        return out;
    }

    private static void runQuietly(List<String> command) throws IOException, InterruptedException {
        var p = new ProcessBuilder(command).redirectErrorStream(true).start();
        p.getInputStream().readAllBytes();
        p.waitFor(10, TimeUnit.SECONDS);
    }
}
