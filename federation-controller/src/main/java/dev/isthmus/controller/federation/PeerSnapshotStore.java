package dev.isthmus.controller.federation;

import com.fasterxml.jackson.databind.ObjectMapper;
import dev.isthmus.api.names.ClusterName;
import dev.isthmus.api.registry.RegistrySnapshot;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.List;
import org.jboss.logging.Logger;

/**
 * The last known registry of every peer, on disk ({@code <state-dir>/peers/<cluster>.json}), so a
 * controller restarted during a partition still serves what it knew (static stability). Files are
 * replaced atomically; one that cannot be read is skipped with a warning, never fatal.
 */
public final class PeerSnapshotStore {

    private static final Logger LOG = Logger.getLogger(PeerSnapshotStore.class);

    private final Path dir;
    private final ObjectMapper json;

    public PeerSnapshotStore(Path stateDir, ObjectMapper json) {
        this.dir = stateDir.resolve("peers");
        this.json = json;
    }

    public void save(RegistrySnapshot snapshot) {
        try {
            Files.createDirectories(dir);
            Path target = dir.resolve(ClusterName.of(snapshot.cluster()).value() + ".json");
            Path tmp = Files.createTempFile(dir, snapshot.cluster(), ".tmp");
            json.writeValue(tmp.toFile(), snapshot);
            Files.move(tmp, target, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        } catch (IOException | IllegalArgumentException e) {
            LOG.warnf("event=peer_snapshot_not_saved cluster=%s dir=%s cause=%s", snapshot.cluster(), dir, e.getMessage());
        }
    }

    /** Forgets one cluster's registry (it left the federation). */
    public void delete(String cluster) {
        try {
            Files.deleteIfExists(dir.resolve(ClusterName.of(cluster).value() + ".json"));
        } catch (IOException | IllegalArgumentException e) {
            LOG.warnf("event=peer_snapshot_not_deleted cluster=%s dir=%s cause=%s", cluster, dir, e.getMessage());
        }
    }

    /** Forgets every peer's registry (this cluster left the federation). */
    public void deleteAll() {
        if (!Files.isDirectory(dir)) {
            return;
        }
        try (var files = Files.list(dir)) {
            for (Path f : files.filter(p -> p.toString().endsWith(".json")).toList()) {
                Files.deleteIfExists(f);
            }
        } catch (IOException e) {
            LOG.warnf("event=peer_snapshots_not_deleted dir=%s cause=%s", dir, e.getMessage());
        }
    }

    public List<RegistrySnapshot> loadAll() {
        var out = new ArrayList<RegistrySnapshot>();
        if (!Files.isDirectory(dir)) {
            return out;
        }
        try (var files = Files.list(dir)) {
            for (Path f : files.filter(p -> p.toString().endsWith(".json")).sorted().toList()) {
                try {
                    var snapshot = json.readValue(f.toFile(), RegistrySnapshot.class);
                    if (!snapshot.consistent() || !f.getFileName().toString().equals(snapshot.cluster() + ".json")) {
                        throw new IOException("content does not match its hash or file name");
                    }
                    out.add(snapshot);
                } catch (IOException e) {
                    LOG.warnf("event=peer_snapshot_skipped file=%s cause=%s", f, e.getMessage());
                }
            }
        } catch (IOException e) {
            LOG.warnf("event=peer_snapshots_unreadable dir=%s cause=%s", dir, e.getMessage());
        }
        return out;
    }
}
