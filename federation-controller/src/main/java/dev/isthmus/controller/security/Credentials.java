package dev.isthmus.controller.security;

import dev.isthmus.controller.config.ControllerConfig;
import jakarta.annotation.PostConstruct;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.inject.Inject;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermission;
import java.nio.file.attribute.PosixFilePermissions;
import java.security.MessageDigest;
import java.security.SecureRandom;
import java.util.HexFormat;
import java.util.Set;
import org.jboss.logging.Logger;

/**
 * The controller's bearer credentials: the admin credential, which guards every request that
 * changes the federation, and the workload credential, which sidecars present to register their
 * workloads (the admin credential works there too). Each lives in a file; a missing file is made
 * with 32 random bytes, owner-only, and its path logged, never its content. A file readable by
 * others is refused at start.
 */
@ApplicationScoped
@io.quarkus.runtime.Startup
public class Credentials {

    private static final Logger LOG = Logger.getLogger(Credentials.class);
    private static final SecureRandom RANDOM = new SecureRandom();

    @Inject
    ControllerConfig config;

    private byte[] admin;
    private byte[] workload;
    private Path adminFile;

    @PostConstruct
    void init() {
        adminFile = config.admin().tokenFile().orElse(config.stateDir().resolve("admin-token"));
        admin = config.admin().token().map(Credentials::literal).orElseGet(() -> loadOrCreate(adminFile, "admin"));
        workload = config.workload().token().map(Credentials::literal)
                .orElseGet(() -> loadOrCreate(config.workload().tokenFile().orElse(config.stateDir().resolve("workload-token")), "workload"));
    }

    public Path adminFile() {
        return adminFile;
    }

    public boolean isAdmin(String presented) {
        return matches(admin, presented);
    }

    public boolean isWorkload(String presented) {
        return matches(workload, presented) || matches(admin, presented);
    }

    private static byte[] literal(String value) {
        if (value.strip().length() < 16) {
            throw new IllegalArgumentException("a credential given in the configuration needs at least 16 characters");
        }
        return value.strip().getBytes(StandardCharsets.UTF_8);
    }

    private static boolean matches(byte[] expected, String presented) {
        return presented != null && MessageDigest.isEqual(expected, presented.strip().getBytes(StandardCharsets.UTF_8));
    }

    /** Reads a credential file, or writes a new random credential to it. */
    public static byte[] loadOrCreate(Path file, String what) {
        try {
            if (Files.exists(file)) {
                Set<PosixFilePermission> perms = Files.getPosixFilePermissions(file);
                if (perms.contains(PosixFilePermission.GROUP_READ) || perms.contains(PosixFilePermission.OTHERS_READ)) {
                    throw new IOException(file + " is readable by group or others (" + PosixFilePermissions.toString(perms)
                            + "); run chmod 600 " + file);
                }
                String value = Files.readString(file).strip();
                if (value.length() < 16) {
                    throw new IOException(file + " holds " + value.length() + " characters; a credential needs at least 16");
                }
                return value.getBytes(StandardCharsets.UTF_8);
            }
            byte[] raw = new byte[32];
            RANDOM.nextBytes(raw);
            String value = HexFormat.of().formatHex(raw);
            Files.createDirectories(file.toAbsolutePath().getParent());
            Files.createFile(file, PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rw-------")));
            Files.writeString(file, value + "\n");
            LOG.infof("event=credential_created kind=%s file=%s", what, file);
            return value.getBytes(StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new UncheckedIOException("the " + what + " credential cannot be loaded: " + e.getMessage(), e);
        }
    }
}
