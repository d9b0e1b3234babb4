/*
 * Chat page for the extractive question-answering API.
 *
 * Every piece of text that comes from the server (answers, quotes, titles, document text) goes
 * into the page through textContent / text nodes only: never as HTML.
 *
 * Offsets from the server count Unicode code points (Python string indices), while JavaScript
 * strings index UTF-16 code units. utf16Offsets() converts between the two so highlights stay
 * exact when a text holds emoji or other characters outside the Basic Multilingual Plane.
 */
'use strict';

(function () {
  const ASK_TIMEOUT_MS = 180000;
  const DOCUMENT_TIMEOUT_MS = 60000;
  const SNIPPET_CODE_POINTS = 260;
  const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

  const state = {
    busy: false,
    documents: new Map(), // doc_id -> Promise of the document JSON
    panelRequest: 0, // increases on every open/close so late responses are dropped
    opener: null, // the element that opened the document panel
  };

  let els = null;

  // ---------------------------------------------------------------- small DOM helpers

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
  }

  function asArray(value) {
    return Array.isArray(value) ? value : [];
  }

  function asText(value) {
    return typeof value === 'string' ? value : '';
  }

  // ---------------------------------------------------------------- code points and offsets

  /**
   * Converts code-point offsets into UTF-16 indices of `text`.
   * Returns null when an offset is not a non-negative integer or lies past the end of the text.
   */
  function utf16Offsets(text, codePointOffsets) {
    for (const offset of codePointOffsets) {
      if (!Number.isInteger(offset) || offset < 0) return null;
    }
    const order = codePointOffsets.map((_, i) => i).sort((a, b) => codePointOffsets[a] - codePointOffsets[b]);
    const result = new Array(codePointOffsets.length);
    let unit = 0;
    let codePoint = 0;
    for (const i of order) {
      const target = codePointOffsets[i];
      while (codePoint < target) {
        if (unit >= text.length) return null;
        const high = text.charCodeAt(unit);
        if (high >= 0xd800 && high <= 0xdbff && unit + 1 < text.length) {
          const low = text.charCodeAt(unit + 1);
          unit += low >= 0xdc00 && low <= 0xdfff ? 2 : 1;
        } else {
          unit += 1;
        }
        codePoint += 1;
      }
      result[i] = unit;
    }
    return result;
  }

  /** Splits `text` into [before, inside, after] at code-point offsets, or null when they do not fit. */
  function splitAt(text, start, end) {
    if (typeof text !== 'string' || !(start <= end)) return null;
    const units = utf16Offsets(text, [start, end]);
    if (!units) return null;
    return [text.slice(0, units[0]), text.slice(units[0], units[1]), text.slice(units[1])];
  }

  /** The first `limit` code points of `text`, cut at a word boundary, with an ellipsis when shortened. */
  function snippet(text, limit) {
    const compact = asText(text).replace(/\s+/g, ' ').trim();
    const points = Array.from(compact);
    if (points.length <= limit) return compact;
    let cut = points.slice(0, limit).join('');
    const space = cut.lastIndexOf(' ');
    if (space > cut.length * 0.6) cut = cut.slice(0, space);
    return cut.replace(/[\s.,;:]+$/, '') + ' …';
  }

  // ---------------------------------------------------------------- formatting

  function formatDate(value) {
    const match = /^(\d{4})-(\d{2})-(\d{2})/.exec(asText(value));
    if (!match) return asText(value);
    const month = MONTHS[Number(match[2]) - 1];
    if (!month) return asText(value);
    return `${Number(match[3])} ${month} ${match[1]}`;
  }

  function percent(confidence) {
    const value = Number(confidence);
    if (!Number.isFinite(value)) return 0;
    return Math.round(Math.min(1, Math.max(0, value)) * 100);
  }

  function metaLine(item) {
    const parts = [];
    if (asText(item.source)) parts.push(item.source);
    if (asText(item.published)) parts.push(formatDate(item.published));
    if (Number.isInteger(item.page) && item.page > 0) parts.push(`p. ${item.page}`);
    return parts.join(' · ');
  }

  function safeHttpUrl(value) {
    try {
      const text = asText(value).trim();
      if (!text) return null;
      const url = new URL(text); // absolute URLs only: a relative one would point into this site
      return url.protocol === 'http:' || url.protocol === 'https:' ? url.href : null;
    } catch (_) {
      return null;
    }
  }

  // ---------------------------------------------------------------- API

  class ApiError extends Error {
    constructor(message, detail) {
      super(message);
      this.detail = detail || '';
    }
  }

  async function apiFetch(url, options, timeoutMs) {
    const controller = new AbortController();
    const timer = window.setTimeout(() => controller.abort(), timeoutMs);
    let response;
    try {
      response = await fetch(url, Object.assign({}, options, {
        signal: controller.signal,
        headers: Object.assign({ Accept: 'application/json' }, (options && options.headers) || {}),
      }));
    } catch (err) {
      if (err && err.name === 'AbortError') {
        throw new ApiError('The server took too long to answer. Please try again.');
      }
      throw new ApiError('Could not reach the server. Check your connection and that the service is running, then try again.');
    } finally {
      window.clearTimeout(timer);
    }
    let body = null;
    try {
      body = await response.json();
    } catch (_) {
      body = null;
    }
    if (!response.ok) {
      const error = body && typeof body === 'object' ? body.error : null;
      const message = error && asText(error.message) ? error.message : `The server answered ${response.status} ${response.statusText || ''}`.trim();
      const code = error && asText(error.code) ? `${error.code}, ` : '';
      throw new ApiError(message, `${code}HTTP ${response.status}`);
    }
    if (!body || typeof body !== 'object') {
      throw new ApiError('The server sent a response that could not be read.', `HTTP ${response.status}`);
    }
    return body;
  }

  function askQuestion(question) {
    return apiFetch('/api/ask', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ question }),
    }, ASK_TIMEOUT_MS);
  }

  function loadDocument(docId) {
    if (!state.documents.has(docId)) {
      const request = apiFetch(`/api/documents/${encodeURIComponent(docId)}`, { method: 'GET' }, DOCUMENT_TIMEOUT_MS);
      state.documents.set(docId, request);
      request.catch(() => state.documents.delete(docId)); // let a later click try again
    }
    return state.documents.get(docId);
  }

  // ---------------------------------------------------------------- rendering: pieces

  function confidenceMeter(confidence, extraClass) {
    const pct = percent(confidence);
    const level = pct >= 70 ? 'high' : pct >= 40 ? 'medium' : 'low';
    const meter = el('div', `confidence level-${level}${extraClass ? ' ' + extraClass : ''}`);
    meter.setAttribute('role', 'meter');
    meter.setAttribute('aria-valuemin', '0');
    meter.setAttribute('aria-valuemax', '100');
    meter.setAttribute('aria-valuenow', String(pct));
    meter.setAttribute('aria-label', 'Confidence');
    meter.title = `Estimated probability that this answer is right: ${pct}%`;
    const bar = el('span', 'confidence-bar');
    bar.setAttribute('aria-hidden', 'true');
    const fill = el('span', 'confidence-fill');
    fill.style.width = `${pct}%`;
    bar.appendChild(fill);
    meter.appendChild(bar);
    meter.appendChild(el('span', 'confidence-value', `${pct}%`));
    meter.appendChild(el('span', 'confidence-label', 'confidence'));
    return meter;
  }

  /** The sentence holding the answer, with the answer marked, cut by offsets (never by search). */
  function citedSentence(citation, extraClass) {
    const quote = el('blockquote', `sentence${extraClass ? ' ' + extraClass : ''}`);
    const sentenceStart = citation.sentence_start;
    const parts = Number.isInteger(sentenceStart)
      ? splitAt(asText(citation.sentence), citation.start - sentenceStart, citation.end - sentenceStart)
      : null;
    if (parts) {
      quote.appendChild(document.createTextNode(parts[0].replace(/^\s+/, '')));
      quote.appendChild(el('mark', 'answer-span', parts[1]));
      quote.appendChild(document.createTextNode(parts[2].replace(/\s+$/, '')));
    } else {
      // Offsets that do not fit the sentence: show the quote alone rather than guess.
      quote.appendChild(el('mark', 'answer-span', asText(citation.quote)));
    }
    return quote;
  }

  function documentTitle(item) {
    return asText(item.title) || asText(item.doc_id) || 'Untitled document';
  }

  // A button that opens a document with the range [item.start, item.end) highlighted;
  // item is a citation (which also carries its quote) or a passage.
  function documentButton(className, label, item) {
    const button = el('button', className, label);
    button.type = 'button';
    button.setAttribute('aria-haspopup', 'dialog');
    button.title = 'Open the document at this passage';
    button.addEventListener('click', () => openDocument({
      doc_id: item.doc_id,
      title: documentTitle(item),
      source: item.source,
      published: item.published,
      start: item.start,
      end: item.end,
      quote: item.quote,
    }, button));
    return button;
  }

  function citationButton(citation) {
    const button = documentButton('citation', null, citation);
    button.appendChild(el('span', 'citation-title', documentTitle(citation)));
    const meta = metaLine(citation);
    if (meta) {
      button.appendChild(document.createTextNode(' '));
      button.appendChild(el('span', 'citation-meta', meta));
    }
    return button;
  }

  /** Relative days of the cited sentence ("Friday") with the day they name. */
  function resolvedDays(citation) {
    const days = asArray(citation.dates).filter((d) => asText(d.text) && asText(d.date));
    if (!days.length) return null;
    const line = el('p', 'resolved-dates');
    line.textContent = days.map((d) => `${asText(d.text)} = ${formatDate(d.date)}`).join(' · ');
    return line;
  }

  function citationList(citations, className) {
    const list = el('ol', className || 'citations');
    for (const citation of citations) {
      const item = el('li', 'cited-item');
      item.appendChild(citedSentence(citation));
      const days = resolvedDays(citation);
      if (days) item.appendChild(days);
      item.appendChild(citationButton(citation));
      list.appendChild(item);
    }
    return list;
  }

  function agreementLine(count) {
    const sources = Number(count);
    if (!Number.isInteger(sources) || sources < 2) return null;
    return el('p', 'agreement', `${sources} sources agree`);
  }

  /** The answer and the credible different answers of other sources, side by side, newest first. */
  function conflictsBlock(answer, conflicts) {
    const block = el('section', 'conflicts');
    block.appendChild(el('p', 'section-label', 'Sources differ'));
    const row = el('div', 'conflict-row');
    for (const candidate of [answer, ...conflicts]) {
      const column = el('div', 'conflict');
      column.appendChild(el('p', 'conflict-text', asText(candidate.text)));
      const when = asText(candidate.published) || asText((asArray(candidate.citations)[0] || {}).published);
      if (when) column.appendChild(el('p', 'conflict-date', `as of ${formatDate(when)}`));
      column.appendChild(confidenceMeter(candidate.confidence, 'compact'));
      for (const citation of asArray(candidate.citations)) column.appendChild(citationButton(citation));
      row.appendChild(column);
    }
    block.appendChild(row);
    return block;
  }

  function alternativesBlock(alternatives) {
    const details = el('details', 'alternatives');
    const count = alternatives.length;
    details.appendChild(el('summary', null,
      count === 1 ? '1 other possible answer' : `${count} other possible answers`));
    const list = el('ul', 'alternative-list');
    for (const alternative of alternatives) {
      const item = el('li', 'alternative');
      const head = el('div', 'alternative-head');
      head.appendChild(el('span', 'alternative-text', asText(alternative.text)));
      if (asText(alternative.published)) {
        head.appendChild(el('span', 'alternative-date', formatDate(alternative.published)));
      }
      head.appendChild(confidenceMeter(alternative.confidence, 'compact'));
      item.appendChild(head);
      const citations = asArray(alternative.citations);
      if (citations.length) {
        const links = el('div', 'alternative-citations');
        for (const citation of citations) links.appendChild(citationButton(citation));
        item.appendChild(links);
      }
      list.appendChild(item);
    }
    details.appendChild(list);
    return details;
  }

  function timingsLine(timings) {
    if (!timings || typeof timings !== 'object') return null;
    const total = Number(timings.total);
    if (!Number.isFinite(total)) return null;
    const seconds = total >= 1000 ? `${(total / 1000).toFixed(1)} s` : `${Math.round(total)} ms`;
    return el('p', 'timings', `Answered in ${seconds}`);
  }

  function passageList(passages) {
    const list = el('ol', 'passages');
    for (const passage of passages) {
      const item = el('li', 'passage');
      item.appendChild(documentButton('passage-link', documentTitle(passage), passage));
      const meta = metaLine(passage);
      if (meta) {
        item.appendChild(document.createTextNode(' '));
        item.appendChild(el('span', 'passage-meta', meta));
      }
      item.appendChild(el('p', 'passage-snippet', snippet(passage.text, SNIPPET_CODE_POINTS)));
      list.appendChild(item);
    }
    return list;
  }

  // ---------------------------------------------------------------- rendering: turns

  function appendTurn(node) {
    els.conversation.appendChild(node);
    return node;
  }

  function renderQuestion(question) {
    const turn = el('div', 'turn question');
    turn.appendChild(el('p', 'question-text', question));
    return appendTurn(turn);
  }

  function renderPending() {
    const turn = el('div', 'turn reply pending');
    turn.setAttribute('role', 'status');
    turn.appendChild(el('span', 'pending-dots'));
    turn.appendChild(el('span', 'pending-text', 'Searching the documents…'));
    return appendTurn(turn);
  }

  function renderAnswer(answer) {
    const turn = el('article', 'turn reply answer');
    turn.appendChild(el('p', 'reply-label', 'Answer'));

    const main = el('div', 'answer-main');
    main.appendChild(el('p', 'answer-text', asText(answer.text)));
    main.appendChild(confidenceMeter(answer.confidence));
    turn.appendChild(main);
    const agreement = agreementLine(answer.sources);
    if (agreement) turn.appendChild(agreement);

    const citations = asArray(answer.citations);
    if (citations.length) {
      turn.appendChild(el('p', 'section-label', citations.length === 1 ? 'Source' : `Sources (${citations.length})`));
      turn.appendChild(citationList(citations));
    }
    const conflicts = asArray(answer.conflicts);
    if (conflicts.length) turn.appendChild(conflictsBlock(answer, conflicts));
    const alternatives = asArray(answer.alternatives);
    if (alternatives.length) turn.appendChild(alternativesBlock(alternatives));
    const timings = timingsLine(answer.timings_ms);
    if (timings) turn.appendChild(timings);
    return turn;
  }

  function renderAbstention(answer) {
    const turn = el('article', 'turn reply abstention');
    turn.appendChild(el('p', 'reply-label', 'No answer found'));
    turn.appendChild(el('p', 'abstention-message',
      asText(answer.message) || 'The documents do not seem to answer this question.'));

    const guess = asArray(answer.alternatives)[0];
    if (guess && asText(guess.text)) {
      const box = el('div', 'guess');
      const head = el('div', 'guess-head');
      head.appendChild(el('span', 'guess-label', 'Low-confidence guess'));
      head.appendChild(el('span', 'guess-text', guess.text));
      head.appendChild(confidenceMeter(guess.confidence, 'compact'));
      box.appendChild(head);
      const citations = asArray(guess.citations);
      if (citations.length) box.appendChild(citationList(citations, 'citations guess-citations'));
      turn.appendChild(box);
    }

    const passages = asArray(answer.passages);
    if (passages.length) {
      turn.appendChild(el('p', 'section-label', 'Closest passages'));
      turn.appendChild(passageList(passages));
    }
    const timings = timingsLine(answer.timings_ms);
    if (timings) turn.appendChild(timings);
    return turn;
  }

  function renderError(message, detail) {
    const turn = el('div', 'turn reply error');
    turn.setAttribute('role', 'alert');
    turn.appendChild(el('p', 'reply-label', 'Something went wrong'));
    turn.appendChild(el('p', 'error-message', message));
    if (detail) turn.appendChild(el('p', 'error-detail', detail));
    return turn;
  }

  // ---------------------------------------------------------------- asking

  function setBusy(busy) {
    state.busy = busy;
    els.question.disabled = busy;
    els.send.disabled = busy;
    els.form.setAttribute('aria-busy', busy ? 'true' : 'false');
  }

  function scrollToTurn(turn) {
    const smooth = !window.matchMedia('(prefers-reduced-motion: reduce)').matches;
    turn.scrollIntoView({ block: 'start', behavior: smooth ? 'smooth' : 'auto' });
  }

  async function submitQuestion(event) {
    event.preventDefault();
    if (state.busy) return;
    const question = els.question.value.trim();
    if (!question) {
      els.question.focus();
      return;
    }
    const welcome = document.getElementById('welcome');
    if (welcome) welcome.remove();

    const questionTurn = renderQuestion(question);
    const pending = renderPending();
    setBusy(true);
    scrollToTurn(questionTurn);

    let reply;
    try {
      const answer = await askQuestion(question);
      reply = answer.abstained ? renderAbstention(answer) : renderAnswer(answer);
      els.question.value = '';
    } catch (err) {
      reply = err instanceof ApiError
        ? renderError(err.message, err.detail)
        : renderError('The answer could not be shown.', String(err && err.message ? err.message : err));
    } finally {
      setBusy(false);
    }
    pending.replaceWith(reply);
    scrollToTurn(questionTurn);
    if (window.matchMedia('(pointer: fine)').matches) els.question.focus({ preventScroll: true });
  }

  // ---------------------------------------------------------------- document panel

  function panelIsOpen() {
    return !els.panel.hidden;
  }

  function setPanelStatus(text, isError) {
    els.panelStatus.hidden = !text;
    els.panelStatus.textContent = text || '';
    els.panelStatus.classList.toggle('error', Boolean(isError));
  }

  function renderPanelMeta(ref, doc) {
    clear(els.panelMeta);
    const source = asText(doc && doc.source) || asText(ref.source);
    const published = asText(doc && doc.published) || asText(ref.published);
    const meta = metaLine({ source, published });
    if (meta) els.panelMeta.appendChild(document.createTextNode(meta));
    const url = doc ? safeHttpUrl(doc.url) : null;
    if (url) {
      if (meta) els.panelMeta.appendChild(document.createTextNode(' · '));
      const link = el('a', 'document-link', 'original');
      link.href = url;
      link.target = '_blank';
      link.rel = 'noopener noreferrer';
      els.panelMeta.appendChild(link);
    }
  }

  function renderDocumentText(doc, ref) {
    clear(els.panelText);
    const text = asText(doc.text);
    const parts = splitAt(text, ref.start, ref.end);
    if (!parts) {
      els.panelText.appendChild(document.createTextNode(text));
      setPanelStatus('The cited passage could not be located in this document.', true);
      return null;
    }
    els.panelText.appendChild(document.createTextNode(parts[0]));
    const mark = el('mark', 'cited', parts[1]);
    els.panelText.appendChild(mark);
    els.panelText.appendChild(document.createTextNode(parts[2]));
    if (typeof ref.quote === 'string' && parts[1] !== ref.quote) {
      setPanelStatus('This document has changed since the answer was found; the highlight may be off.', true);
    } else {
      setPanelStatus('');
    }
    return mark;
  }

  async function openDocument(ref, opener) {
    const request = ++state.panelRequest;
    if (state.opener && state.opener !== opener) state.opener.classList.remove('is-open');
    state.opener = opener || null;
    if (state.opener) state.opener.classList.add('is-open');

    els.panelTitle.textContent = ref.title || ref.doc_id || 'Document';
    renderPanelMeta(ref, null);
    clear(els.panelText);
    setPanelStatus('Loading the document…');
    els.panel.hidden = false;
    document.body.classList.add('panel-open');
    els.panelClose.focus({ preventScroll: true });

    let doc;
    try {
      doc = await loadDocument(ref.doc_id);
    } catch (err) {
      if (request !== state.panelRequest) return;
      const detail = err instanceof ApiError && err.detail ? ` (${err.detail})` : '';
      setPanelStatus(`The document could not be loaded: ${err.message}${detail}`, true);
      return;
    }
    if (request !== state.panelRequest) return; // another citation was opened meanwhile

    if (asText(doc.title)) els.panelTitle.textContent = doc.title;
    renderPanelMeta(ref, doc);
    const mark = renderDocumentText(doc, ref);
    els.panelText.scrollTop = 0;
    if (mark) mark.scrollIntoView({ block: 'center', inline: 'nearest' });
  }

  function closeDocument() {
    if (!panelIsOpen()) return;
    state.panelRequest += 1;
    els.panel.hidden = true;
    document.body.classList.remove('panel-open');
    clear(els.panelText);
    const opener = state.opener;
    state.opener = null;
    if (opener) {
      opener.classList.remove('is-open');
      if (opener.isConnected) opener.focus({ preventScroll: true });
    }
  }

  // ---------------------------------------------------------------- start

  function start() {
    els = {
      form: document.getElementById('ask-form'),
      question: document.getElementById('question'),
      send: document.getElementById('send'),
      conversation: document.getElementById('conversation'),
      panel: document.getElementById('document-panel'),
      panelTitle: document.getElementById('document-title'),
      panelMeta: document.getElementById('document-meta'),
      panelStatus: document.getElementById('document-status'),
      panelText: document.getElementById('document-text'),
      panelClose: document.getElementById('document-close'),
    };
    els.form.addEventListener('submit', submitQuestion);
    els.panelClose.addEventListener('click', closeDocument);
    document.addEventListener('keydown', (event) => {
      if (event.key === 'Escape' && panelIsOpen()) {
        event.preventDefault();
        closeDocument();
      }
    });
    for (const example of document.querySelectorAll('.example')) {
      example.addEventListener('click', () => {
        if (state.busy) return;
        els.question.value = example.textContent.trim();
        els.form.requestSubmit();
      });
    }
    if (window.matchMedia('(pointer: fine)').matches) els.question.focus({ preventScroll: true });
  }

  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', start);
  } else {
    start();
  }
})();
