// The wall's time control (dashboard/time_control.py): play, pause and back-to-live only move the slider; the slider
// asks the server for that moment. Positions 0 .. steps-1 are the past steps, oldest first; `steps` is live.
window.dash_clientside = Object.assign({}, window.dash_clientside, {
  timeline: {
    step: function (ticks, playClicks, liveClicks, value, spec, stopped) {
      const noUpdate = window.dash_clientside.no_update;
      const trigger = window.dash_clientside.callback_context.triggered_id;
      const live = spec.steps;
      const stop = [noUpdate, true, spec.play, 'time-play'];
      const play = [noUpdate, false, spec.pause, 'time-play playing'];
      if (trigger === 'wall-time-live') {
        return [live, true, spec.play, 'time-play'];
      }
      if (trigger === 'wall-time-play') {
        if (!stopped) { return stop; }
        // From live, playback starts at the oldest step; from a past step, it goes on from there.
        return value >= live ? [0].concat(play.slice(1)) : play;
      }
      if (trigger !== 'wall-time-player' || stopped) { return [noUpdate, noUpdate, noUpdate, noUpdate]; }
      if (value >= live) {
        return spec.loop ? [0].concat(play.slice(1)) : stop;   // reached live on an earlier tick
      }
      const next = value + 1;
      if (next === live && !spec.loop) { return [live, true, spec.play, 'time-play']; }
      return [next, noUpdate, noUpdate, noUpdate];
    },
    // The same factor assets/maps.js applies to the figure once: the server scales what it sends later alike.
    scale: function () {
      return Math.max(1, Math.min(window.innerWidth / 1920, window.innerHeight / 1080));
    }
  }
});
