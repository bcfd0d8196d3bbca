package dev.isthmus.proxy.tcp;

import java.net.InetSocketAddress;
import java.util.Optional;
import java.util.Set;

/** Chooses the upstream endpoint for each new connection of a {@link TcpRelay}, and hears how it went. */
public interface UpstreamSelector {

    /** An endpoint not in {@code tried}, or empty when none is left. */
    Optional<InetSocketAddress> pick(Set<InetSocketAddress> tried);

    /** A connection (and its TLS handshake, if any) to {@code address} succeeded. */
    default void connected(InetSocketAddress address) {
    }

    /** An exchange with {@code address} went well (a TCP connection made; an HTTP answer below 500). */
    default void succeeded(InetSocketAddress address) {
    }

    /** A connection to {@code address} that {@link #connected} reported has closed. */
    default void released(InetSocketAddress address) {
    }

    /** Connecting (or the TLS handshake) to {@code address} failed, or (HTTP) it answered 5xx or reset. */
    default void failed(InetSocketAddress address) {
    }

    /**
     * A connection to {@code address} was refused or found no route (nothing listens there, as after a
     * crash or when a whole region went dark): a definitive answer, unlike a timeout. The default
     * counts it as one failure; a load balancer ejects the endpoint at once.
     */
    default void refused(InetSocketAddress address) {
        failed(address);
    }

    /** Whether {@code cause}, a connect's failure, is definitive ({@link #refused}): refused or unreachable, not a timeout. */
    static boolean definitive(Throwable cause) {
        return cause instanceof java.net.ConnectException && !(cause instanceof io.netty.channel.ConnectTimeoutException)
                || cause instanceof java.net.NoRouteToHostException;
    }

    /**
     * Admits a new caller connection, or returns the name of the open circuit breaker that refuses it
     * (then the connection is closed at once). Admitted connections are given back with {@link #leave}.
     */
    default String admit() {
        return null;
    }

    default void leave() {
    }

    /**
     * The drop category (xDS {@code drop_overloads}) under which this new request or connection is
     * refused, each category's share drawn in order; null when it goes on.
     */
    default String dropped() {
        return null;
    }

    /** The region of {@code address}'s locality, empty when unknown (a metrics label). */
    default String region(InetSocketAddress address) {
        return "";
    }

    /** Always the one address. */
    static UpstreamSelector fixed(InetSocketAddress address) {
        return tried -> tried.contains(address) ? Optional.empty() : Optional.of(address);
    }
}
