package dev.isthmus.shop.orderprocessing;

import dev.isthmus.shop.ShopGrpc;
import dev.isthmus.shop.ShopService;

/**
 * The shop's orders: {@code /orders/checkout} prices an order by calling the catalogue, over HTTP/1.1
 * ({@code GET product-catalog.shop/products}) or, with {@code ?catalog=grpc}, over gRPC
 * ({@value ShopGrpc#LIST_PRODUCTS} at {@code product-catalog.shop:9090}).
 */
public final class OrderProcessingApp {
    public static void main(String[] args) throws Exception {
        var shop = ShopService.create("order-processing", System.getenv());
        shop.route("/orders/checkout", req -> {
            String query = req.getRequestURI().getRawQuery();
            if (query != null && java.util.Arrays.asList(query.split("&")).contains("catalog=grpc")) {
                return shop.callGrpc("product-catalog", ShopGrpc.CATALOG_SERVICE_PORT, ShopGrpc.LIST_PRODUCTS, "{}");
            }
            return shop.call("product-catalog", "/products");
        }).start();
    }
}
