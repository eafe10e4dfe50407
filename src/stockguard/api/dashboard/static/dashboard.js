// The sale dashboard: polls /dashboard/data once a second and draws what it says.
// Charts keep the last 15 minutes seen by this tab (kept across reloads in sessionStorage);
// rates are worked out here from the service's running totals. Everything the store sent
// (titles, ids) goes into the page as text, never as HTML.
"use strict";

(() => {
  const POLL_MS = 1000;
  const HIDDEN_POLL_MS = 5000;
  const MAX_POINTS = 900;
  const HISTORY_KEY = "stockguard-dashboard-history-v1";
  const COLOURS = { sellable: "#0072b2", held: "#e69f00", taken: "#009e73" };
  const OUTCOMES = [
    ["created", "Created (201)", "#009e73"],
    ["sold_out", "Sold out", "#d55e00"],
    ["limit_exceeded", "Limit exceeded", "#cc79a7"],
    ["not_eligible", "Not eligible", "#e69f00"],
    ["rate_limited", "Rate limited", "#56b4e9"],
  ];
  const count = new Intl.NumberFormat(undefined);
  const rate = new Intl.NumberFormat(undefined, { maximumFractionDigits: 1 });
  const clock = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" });

  const $ = (selector) => document.querySelector(selector);

  function element(tag, attributes = {}, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes)) {
      if (name === "text") node.textContent = value;
      else if (name === "className") node.className = value;
      else node.setAttribute(name, value);
    }
    for (const child of children) node.append(child);
    return node;
  }

  function cell(value, numeric = false) {
    const td = element("td", { text: numeric ? count.format(value) : value });
    if (numeric) {
      td.className = "num";
      td.dataset.value = String(value);
    }
    return td;
  }

  function fillTable(table, rows, emptyNote) {
    const body = table.querySelector("tbody");
    body.replaceChildren(...rows);
    if (emptyNote) {
      emptyNote.hidden = rows.length > 0;
      table.hidden = rows.length === 0;
    }
  }

  function untilText(iso, now) {
    const seconds = Math.max(0, Math.round((Date.parse(iso) - now) / 1000));
    if (seconds < 60) return `in ${seconds} s`;
    return `in ${Math.floor(seconds / 60)} min ${seconds % 60} s`;
  }

  // -- history: what this tab has seen, kept across reloads
  function loadHistory() {
    try {
      const kept = JSON.parse(sessionStorage.getItem(HISTORY_KEY));
      if (kept && kept.rates && kept.listings) return kept;
    } catch (_) { /* a damaged copy starts afresh */ }
    return { rates: [[], ...OUTCOMES.map(() => [])], listings: {}, last: null };
  }

  function saveHistory() {
    try {
      sessionStorage.setItem(HISTORY_KEY, JSON.stringify(history));
    } catch (_) { /* storage full or refused: the charts still work for this page */ }
  }

  function push(series, values) {
    values.forEach((value, i) => series[i].push(value));
    if (series[0].length > MAX_POINTS) series.forEach((column) => column.splice(0, column.length - MAX_POINTS));
  }

  const history = loadHistory();

  // -- charts
  function chartOptions(container, series, yLabel) {
    return {
      width: Math.max(200, container.clientWidth),
      height: 220,
      scales: { x: { time: true } },
      series: [{}, ...series.map(([label, colour]) => ({
        label, stroke: colour, width: 2, points: { show: false },
        value: (_, v) => (v == null ? "–" : rate.format(v)),
      }))],
      axes: [{ space: 90 }, { label: yLabel, size: 60, values: (_, ticks) => ticks.map((t) => count.format(t)) }],
      legend: { live: false },
    };
  }

  function makeChart(container, series, yLabel, data) {
    const chart = new uPlot(chartOptions(container, series, yLabel), data, container);
    new ResizeObserver(() => chart.setSize({ width: Math.max(200, container.clientWidth), height: 220 }))
      .observe(container);
    return chart;
  }

  let outcomeChart = null;
  const listingViews = new Map();

  // -- outcomes: totals since the service started, and orders per second between polls
  function showOutcomes(snapshot, at) {
    const totals = snapshot.outcomes;
    const last = history.last;
    const elapsed = last ? at - last.at : 0;
    const rates = OUTCOMES.map(([key]) => {
      if (!last || elapsed <= 0) return 0;
      const delta = (totals[key] || 0) - (last.totals[key] || 0);
      return delta < 0 ? 0 : delta / elapsed; // below zero: the service restarted
    });
    if (last && elapsed > 0) push(history.rates, [at, ...rates]);
    history.last = { at, totals };

    const tiles = $("#outcome-tiles");
    if (!tiles.children.length) {
      for (const [key, label, colour] of OUTCOMES) {
        tiles.append(element("div", { className: "tile", "data-outcome": key },
          element("div", { className: "label", text: label }),
          element("div", { className: "value", text: "0" }),
          element("div", { className: "sub", text: "" })));
        tiles.lastChild.style.borderLeftColor = colour;
      }
    }
    OUTCOMES.forEach(([key], i) => {
      const tile = tiles.querySelector(`[data-outcome="${key}"]`);
      const total = totals[key] || 0;
      tile.querySelector(".value").textContent = `${rate.format(rates[i])}/s`;
      const sub = tile.querySelector(".sub");
      sub.textContent = `${count.format(total)} in all`;
      sub.dataset.total = String(total);
    });
    const container = $("#outcome-chart");
    if (!outcomeChart) outcomeChart = makeChart(container, OUTCOMES.map(([, l, c]) => [l, c]), "orders/s", history.rates);
    else outcomeChart.setData(history.rates);
    container.dataset.points = String(history.rates[0].length);
  }

  // -- listings: big numbers and sellable / held / taken over time
  function listingView(listing) {
    let view = listingViews.get(listing.listing_id);
    if (view) return view;
    const numbers = element("div", { className: "tiles" });
    for (const key of ["sellable", "held", "taken"]) {
      const tile = element("div", { className: `tile ${key}` },
        element("div", { className: "label", text: { sellable: "Sellable", held: "Held, unpaid", taken: "Paid" }[key] }),
        element("div", { className: "value", text: "0" }));
      tile.style.borderLeftColor = COLOURS[key];
      numbers.append(tile);
    }
    const chart = element("div", { className: "chart" });
    const card = element("article", { className: "card listing", "data-listing-id": listing.listing_id },
      element("header", {},
        element("h3", { text: listing.title }),
        element("span", { className: "muted", text: listing.listing_id }),
        element("span", { className: "badge", text: listing.deduction }),
        element("span", { className: "badge soldout", text: "sold out", hidden: "" })),
      numbers, chart);
    $("#listings").append(card);
    const data = history.listings[listing.listing_id] || (history.listings[listing.listing_id] = [[], [], [], []]);
    view = {
      card, chart, data,
      plot: makeChart(chart, [["Sellable", COLOURS.sellable], ["Held, unpaid", COLOURS.held], ["Paid", COLOURS.taken]], "units", data),
    };
    listingViews.set(listing.listing_id, view);
    return view;
  }

  function showListings(snapshot, at) {
    $("#no-listings").hidden = snapshot.listings.length > 0;
    for (const listing of snapshot.listings) {
      const view = listingView(listing);
      view.card.querySelector("h3").textContent = listing.title;
      for (const key of ["sellable", "held", "taken"]) {
        const value = view.card.querySelector(`.tile.${key} .value`);
        value.textContent = count.format(listing[key]);
        value.dataset.value = String(listing[key]);
      }
      view.card.querySelector(".badge.soldout").hidden = listing.sellable > 0;
      push(view.data, [at, listing.sellable, listing.held, listing.taken]);
      view.plot.setData(view.data);
      view.chart.dataset.points = String(view.data[0].length);
    }
  }

  // -- holds, shortages, refusals, draws, levels
  function showHolds(snapshot) {
    const byListing = new Map();
    for (const { listing_id, minute, units } of snapshot.expiring) {
      if (!byListing.has(listing_id)) byListing.set(listing_id, [0, 0, 0, 0, 0]);
      if (minute < 5) byListing.get(listing_id)[minute] += units;
    }
    fillTable($("#expiring"), [...byListing].map(([id, minutes]) =>
      element("tr", { "data-listing-id": id }, cell(id), ...minutes.map((units) => cell(units, true)))),
      $("#no-expiring"));
    const now = Date.now();
    fillTable($("#soonest"), snapshot.soonest.map((hold) =>
      element("tr", {}, cell(hold.order_id), cell(hold.listing_id), cell(hold.quantity, true),
        cell(untilText(hold.expires_at, now)))), $("#no-soonest"));
  }

  function showTables(snapshot) {
    fillTable($("#shortages"), snapshot.shortages.map((s) =>
      element("tr", { className: "short" }, cell(s.sku), cell(s.warehouse), cell(s.short_by, true))), $("#no-shortages"));
    fillTable($("#rules"), snapshot.refusals_by_rule.map((r) =>
      element("tr", {}, cell(r.code), cell(r.rule), cell(r.count, true))), $("#no-rules"));
    fillTable($("#draws"), snapshot.draws.map((d) =>
      element("tr", {}, cell(d.draw_id), cell(d.standing), cell(d.entries, true))), $("#no-draws"));
    fillTable($("#levels"), snapshot.levels.map((lv) =>
      element("tr", { "data-sku": lv.sku, "data-warehouse": lv.warehouse, className: lv.available < 0 ? "short" : "" },
        cell(lv.sku), cell(lv.warehouse), cell(lv.on_hand, true), cell(lv.reserved, true), cell(lv.committed, true),
        cell(lv.safety, true), cell(lv.available, true), cell(lv.incoming, true), cell(lv.presold, true))));
  }

  // -- polling
  function setStatus(state, text) {
    const status = $("#status");
    status.dataset.state = state;
    status.textContent = text;
  }

  async function poll() {
    try {
      const response = await fetch("/dashboard/data", { credentials: "same-origin", cache: "no-store" });
      if (response.status === 401) {
        window.location.assign("/dashboard/login");
        return;
      }
      if (!response.ok) throw new Error(`the service answered ${response.status}`);
      const snapshot = await response.json();
      const at = Date.parse(snapshot.at) / 1000;
      showOutcomes(snapshot, at);
      showListings(snapshot, at);
      showHolds(snapshot);
      showTables(snapshot);
      saveHistory();
      setStatus("live", "live");
      $("#updated").textContent = `updated ${clock.format(new Date(at * 1000))}`;
    } catch (error) {
      setStatus("offline", "no answer, retrying");
    }
    setTimeout(poll, document.hidden ? HIDDEN_POLL_MS : POLL_MS);
  }

  // -- order search: the order and its movements in the ledger
  async function findOrder(event) {
    event.preventDefault();
    const id = $("#order-id").value.trim();
    const result = $("#order-result");
    const response = await fetch(`/dashboard/orders/${encodeURIComponent(id)}`, { credentials: "same-origin" });
    if (response.status === 401) {
      window.location.assign("/dashboard/login");
      return;
    }
    if (!response.ok) {
      const problem = await response.json().catch(() => ({}));
      result.replaceChildren(element("p", { className: "error", text:
        response.status === 404 ? `No order ${id}.` : problem.detail || `The service answered ${response.status}.` }));
      return;
    }
    const { order, movements } = await response.json();
    const facts = [
      ["Order", order.order_id], ["Status", order.status], ["Buyer", order.buyer_id],
      ["Deduction", order.deduction],
      ["Lines", order.lines.map((l) => `${count.format(l.quantity)} × ${l.listing_id}`).join(", ")],
      ["Expires", order.expires_at || "–"],
    ];
    const list = element("dl", { className: "order", id: "order-facts" });
    for (const [term, value] of facts) list.append(element("dt", { text: term }), element("dd", { text: value }));
    const table = element("table", { id: "order-movements" },
      element("thead", {}, element("tr", {}, ...["When", "Item", "Warehouse", "Counter", "Change", "Why"]
        .map((h) => element("th", { text: h })))),
      element("tbody", {}, ...movements.map((m) => element("tr", {},
        cell(clock.format(new Date(m.at))), cell(m.sku), cell(m.warehouse), cell(m.counter),
        cell(m.delta, true), cell(m.reason)))));
    result.replaceChildren(list, element("h3", { text: `Ledger movements (${movements.length})` }),
      element("div", { className: "scroll" }, table));
  }

  $("#order-search").addEventListener("submit", findOrder);
  poll();
})();
