package dev.isthmus.controller.federation;

import static org.junit.jupiter.api.Assertions.assertEquals;

import com.fasterxml.jackson.databind.ObjectMapper;
import dev.isthmus.api.registry.Endpoint;
import dev.isthmus.api.registry.RegistrySnapshot;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class PeerSnapshotStoreTest {

    @TempDir
    Path state;

    private final ObjectMapper json = new ObjectMapper();

    private static RegistrySnapshot snapshot(String cluster, long generation) {
        return RegistrySnapshot.of(cluster, generation, List.of(new Endpoint("shop/user-login", "ul-1", cluster, "127.0.0.1",
                15006, "http", Map.of("version", "v1"), cluster, "zone-a", true, 1, "")));
    }

    @Test
    void whatWasSavedIsLoadedAfterARestartNewestOnly() {
        var store = new PeerSnapshotStore(state, json);
        store.save(snapshot("eu-west", 5));
        store.save(snapshot("eu-west", 6));
        store.save(snapshot("ap-south", 9));
        var loaded = new PeerSnapshotStore(state, json).loadAll();
        assertEquals(List.of(snapshot("ap-south", 9), snapshot("eu-west", 6)), loaded);
    }

    @Test
    void skipsCorruptOrTamperedFilesAndKeepsTheRest() throws Exception {
        var store = new PeerSnapshotStore(state, json);
        store.save(snapshot("eu-west", 5));
        Files.writeString(state.resolve("peers/ap-south.json"), "{ not json");
        var tampered = json.writeValueAsString(snapshot("us-east", 3)).replace("ul-1", "evil");
        Files.writeString(state.resolve("peers/us-east.json"), tampered);
        assertEquals(List.of(snapshot("eu-west", 5)), store.loadAll());
    }
}
