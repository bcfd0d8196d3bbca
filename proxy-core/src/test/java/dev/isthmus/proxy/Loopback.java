package dev.isthmus.proxy;

import java.io.IOException;
import java.net.InetAddress;
import java.net.ServerSocket;

/** Loopback helpers for the proxy tests. */
public final class Loopback {

    private Loopback() {
    }

    /** A port nothing listens on right now (bound once, then closed). */
    public static int freePort() throws IOException {
        try (var s = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            return s.getLocalPort();
        }
    }
}
