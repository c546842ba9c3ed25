() => {
  // RewardRanker Lab, run once when the page loads (Gradio's `js`):
  //  - keys press the buttons named in #key-map's data-keys (layout.KEYS), never while typing;
  //  - after a key, the page follows what it changed: the selected card into view after a candidate
  //    key, the problem's header to the top after a problem key (] [ n u);
  //  - the address bar follows the problem and candidate shown (?run=&problem=&candidate=), so a
  //    link or a reload opens them again.
  const typing = 'textarea, select, [contenteditable="true"], input:not([type="radio"]):not([type="checkbox"])';
  const problemKeys = new Set([']', '[', 'n', 'u']);
  const shown = () => {
    const head = document.querySelector('#problem-head');
    const card = document.querySelector('.card.selected');
    return {run: head && head.dataset.run, iteration: head && head.dataset.iteration,
            problem: head && head.dataset.problem, candidate: card && card.dataset.candidate};
  };
  const follow = (key, before) => {
    let tries = 0;
    const timer = setInterval(() => {
      const now = shown();
      const moved = now.problem !== before.problem || now.candidate !== before.candidate;
      if (!moved && ++tries < 60) return;
      clearInterval(timer);
      if (problemKeys.has(key) && now.problem !== before.problem) {
        const head = document.querySelector('#problem-head');
        if (head) head.scrollIntoView({block: 'start'});
      } else {
        const card = document.querySelector('.card.selected');
        if (card) card.scrollIntoView({block: 'nearest'});
      }
    }, 50);
  };
  document.addEventListener('keydown', (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey || event.repeat) return;
    if (event.target.closest && event.target.closest(typing)) return;
    const map = document.querySelector('#key-map');
    const keys = map ? JSON.parse(map.dataset.keys) : {};
    const button = document.getElementById(keys[event.key]);
    if (!button || button.offsetParent === null) return;
    event.preventDefault();
    const before = shown();
    button.click();
    follow(event.key, before);
  });
  let written = '';
  new MutationObserver(() => {
    const now = shown();
    if (!now.problem) return;
    const params = new URLSearchParams(window.location.search);
    params.set('run', now.run);
    params.set('problem', now.problem);
    if (now.candidate) params.set('candidate', now.candidate); else params.delete('candidate');
    const query = '?' + params.toString();
    if (query !== written && query !== window.location.search) {
      written = query;
      window.history.replaceState(null, '', query);
    }
  }).observe(document.body, {childList: true, subtree: true});
}
