package dev.isthmus.shop.orderprocessing;

import dev.isthmus.shop.ShopService;

/** The shop's orders: {@code /orders/checkout} prices an order by calling the catalogue. */
public final class OrderProcessingApp {
    public static void main(String[] args) throws Exception {
        var shop = ShopService.create("order-processing", System.getenv());
        shop.route("/orders/checkout", req -> shop.call("product-catalog", "/products")).start();
    }
}
