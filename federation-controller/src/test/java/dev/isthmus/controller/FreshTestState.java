package dev.isthmus.controller;

import io.quarkus.test.common.QuarkusTestResourceLifecycleManager;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Comparator;
import java.util.Map;

/** Starts the test controller with an empty state dir (no membership or tokens from an earlier run). */
public class FreshTestState implements QuarkusTestResourceLifecycleManager {

    @Override
    public Map<String, String> start() {
        Path dir = Path.of("target/test-state");
        if (Files.exists(dir)) {
            try (var walk = Files.walk(dir)) {
                for (Path p : walk.sorted(Comparator.reverseOrder()).toList()) {
                    Files.delete(p);
                }
            } catch (IOException e) {
                throw new IllegalStateException("cannot clear " + dir, e);
            }
        }
        return Map.of();
    }

    @Override
    public void stop() {
    }
}
