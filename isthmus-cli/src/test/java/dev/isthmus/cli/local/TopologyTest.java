package dev.isthmus.cli.local;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import java.util.HashSet;
import java.util.List;
import org.junit.jupiter.api.Test;

class TopologyTest {

    private final Topology three = new Topology("acme", List.of("us-east", "eu-west", "ap-south"), 20000,
            Path.of("/repo"), Path.of("/repo/.isthmus"), "java");

    @Test
    void noTwoComponentsShareAPort() {
        var seen = new HashSet<Integer>();
        for (Component c : three.components()) {
            for (int port : c.ports()) {
                assertTrue(seen.add(port), "port " + port + " of " + c.id() + " is used twice");
            }
        }
        assertEquals(3 * 12, three.components().size()); // nats, controller, bridge, gateway, and 4 apps with their sidecars
    }

    @Test
    void natsConfigLinksEveryOtherRegionByGateway() {
        String conf = three.natsConfigText("eu-west");
        assertTrue(conf.contains("name: \"us-east\", urls: [\"nats://127.0.0.1:20001\"]"), conf);
        assertTrue(conf.contains("name: \"ap-south\", urls: [\"nats://127.0.0.1:20201\"]"), conf);
        assertTrue(conf.contains("jetstream"), conf);
        assertTrue(conf.contains("port: 20100"), conf);
    }

    @Test
    void startsNatsBeforeControllersBeforeAppsBeforeProxies() {
        var stages = three.components().stream().map(Component::stage).toList();
        for (int i = 1; i < stages.size(); i++) {
            assertTrue(stages.get(i - 1) <= stages.get(i));
        }
        assertEquals(Component.Kind.NATS, three.components().get(0).kind());
    }

    @Test
    void rejectsBadRegionsAndPortRanges() {
        assertThrows(IllegalArgumentException.class, () -> new Topology("acme", List.of("US"), 20000, Path.of("/"), Path.of("/s"), "java"));
        assertThrows(IllegalArgumentException.class, () -> new Topology("acme", List.of("a", "a"), 20000, Path.of("/"), Path.of("/s"), "java"));
        assertThrows(IllegalArgumentException.class, () -> new Topology("acme", List.of("a"), 65500, Path.of("/"), Path.of("/s"), "java"));
    }

    @Test
    void aSingleRegionRunsAStandaloneNatsServer() {
        var one = new Topology("acme", List.of("us-east"), 21000, Path.of("/home"), Path.of("/state"), "java");
        String conf = one.natsConfigText("us-east");
        org.junit.jupiter.api.Assertions.assertTrue(conf.contains("jetstream"), conf);
        org.junit.jupiter.api.Assertions.assertFalse(conf.contains("gateway") || conf.contains("cluster"), conf);
    }
}
