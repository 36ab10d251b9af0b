// Promise.withResolvers is used by newer transitive dependencies of js-ipfs 0.66.1 but only
// exists natively from Node 22. Loaded with NODE_OPTIONS=--require=<this file>.
'use strict'
if (typeof Promise.withResolvers !== 'function') {
  Promise.withResolvers = function withResolvers () {
    let resolve, reject
    const promise = new Promise((res, rej) => { resolve = res; reject = rej })
    return { promise, resolve, reject }
  }
}
