package dev.isthmus.trust;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermission;
import java.util.Optional;

/** A secret given in the configuration either as a value or as a file (the value wins). */
public final class Secrets {

    private Secrets() {
    }

    /**
     * The secret, stripped, or null when neither is given. With {@code ownerOnly}, a file readable by
     * group or others is refused.
     */
    public static String read(Optional<String> value, Optional<Path> file, boolean ownerOnly) throws IOException {
        if (value.isPresent()) {
            return value.get().strip();
        }
        if (file.isEmpty()) {
            return null;
        }
        Path f = file.get();
        if (ownerOnly) {
            var perms = Files.getPosixFilePermissions(f);
            if (perms.contains(PosixFilePermission.GROUP_READ) || perms.contains(PosixFilePermission.OTHERS_READ)) {
                throw new IOException(f + " is readable by group or others; run chmod 600 " + f);
            }
        }
        return Files.readString(f).strip();
    }
}
